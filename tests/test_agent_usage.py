"""The agent's usage report counts the prompt tokens the provider served from its cache, so the
server can price them at the cached price (see tests/test_reports.py for the pricing)."""

from __future__ import annotations

from agent_support import require_agent_extra

require_agent_extra()

from livekit.agents.metrics.usage import LLMModelUsage  # noqa: E402

from voicebook.agent.reporting import usage_totals  # noqa: E402


def test_cached_prompt_tokens_are_reported() -> None:
    usage = usage_totals(
        [
            LLMModelUsage(
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=900,
                input_cached_tokens=600,
                output_tokens=40,
            ),
            LLMModelUsage(provider="openai", model="gpt-4o-mini", input_tokens=100),
        ]
    )
    assert (usage.llm_input_tokens, usage.llm_cached_tokens) == (1000, 600)
