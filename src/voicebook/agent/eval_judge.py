"""Judged intents of `voicebook eval`: does what the agent said do what the turn asks?

A `says:` check matches words; whether the agent read the slot back and asked for a yes needs a
reader. livekit-agents' own judge (`ChatMessageAssert.judge`, the model called with one
`check_intent(success, reason)` tool) reads the agent's last answer of the turn against each
intent. It runs only when `voicebook eval --judge-model` (or VOICEBOOK_JUDGE_MODEL) names a model,
reached like the agent's LLM (OpenRouter or OPENAI_API_BASE); without one each intent is
reported as skipped, never failed, so the scenarios still run offline and for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livekit.agents.voice.run_result import ChatMessageEvent

if TYPE_CHECKING:
    from livekit.agents.llm import LLM
    from livekit.agents.voice.run_result import RunResult

    from voicebook.config import Settings

SKIPPED = "skipped: no VOICEBOOK_JUDGE_MODEL"


def judge_llm(settings: Settings, model: str | None) -> LLM | None:
    """The judge: the agent's provider with `model`; None when no model is named."""
    if not model:
        return None
    from voicebook.agent.providers import build_llm

    return build_llm(settings.model_copy(update={"llm_model": model, "openrouter_model": model}))


async def judge_intent(judge: LLM, result: RunResult[Any], intent: str) -> tuple[bool, str]:
    """(held, why) for `intent` against the agent's last answer in `result`."""
    answers = [
        index
        for index, event in enumerate(result.events)
        if isinstance(event, ChatMessageEvent) and event.item.role == "assistant"
    ]
    if not answers:
        return False, "the agent said nothing"
    try:
        await result.expect[answers[-1]].is_message(role="assistant").judge(judge, intent=intent)
    except AssertionError as exc:
        return False, str(exc).split("\n", 1)[0].removeprefix("Judgement failed: ")
    except Exception as exc:  # a judge that is configured but cannot answer fails the check
        return False, f"the judge could not answer: {type(exc).__name__}"
    return True, "judged: yes"
