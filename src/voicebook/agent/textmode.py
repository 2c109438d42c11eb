"""A text-only call: the same `Receptionist` in an `AgentSession` that has an LLM and nothing
else (no room, no STT, TTS or VAD), against a voicebook server.

`voicebook call --text` and `voicebook eval` drive it turn by turn with `say()`; each turn
returns what the agent answered and the tool calls it made, and livekit-agents' `RunResult`
for assertions. The call ends when the model calls `end_conversation` (after its goodbye) or
when `close()` is called (a hang-up: the server summarises the call all the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit.agents import AgentSession
from livekit.agents.voice.run_result import ChatMessageEvent, RunResult

from voicebook.agent.link import APOLOGY, CallLink
from voicebook.agent.providers import build_text_session, llm_model_name
from voicebook.agent.receptionist import Receptionist
from voicebook.agent.tools import ToolCallRecord, ToolObserver
from voicebook.config import Settings
from voicebook.models import Summary
from voicebook.sdk import AsyncClient

ENDING_TIMEOUT_S = 30.0
"""How long a turn waits for end_conversation to reach the server after the goodbye."""


@dataclass
class Turn:
    """One exchange: what the caller said (None for the greeting) and what came back."""

    user: str | None
    agent: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    ms: float = 0.0
    error: str | None = None
    result: RunResult[Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "agent": self.agent,
            "tool_calls": [call.as_dict() for call in self.tool_calls],
            "ms": round(self.ms, 1),
            "error": self.error,
        }


class TextCall:
    def __init__(
        self,
        settings: Settings,
        client: AsyncClient,
        *,
        observer: ToolObserver | None = None,
        session: AgentSession | None = None,
        line_phone: str | None = None,
        modality: Literal["text", "audio"] = "text",
    ) -> None:
        """`line_phone`: the call comes from a phone line with this caller id, attested to the
        server before the first turn as the worker does for a SIP call (the service key);
        `modality`: "audio" runs each turn as if spoken, so the model gets the voice variant of
        the instructions (what a phone caller's agent is told) instead of the text one."""
        self.settings = settings
        self.client = client
        self.turns: list[Turn] = []
        self.session_id = ""
        self.link: CallLink | None = None
        self._observer = observer
        self._session = session
        self._current: Turn | None = None
        self._line_phone = line_phone
        self._modality: Literal["text", "audio"] = modality

    @property
    def agent_session(self) -> AgentSession:
        assert self._session is not None, "start() the call first"
        return self._session

    async def start(self) -> Turn:
        """Start a server session and the agent; the greeting is the first turn."""
        started = time.monotonic()
        self.session_id = (await self.client.start_session()).session_id
        self._session = self._session or build_text_session(self.settings)
        self.link = CallLink(self.client, self.session_id, observer=self._observer)
        self.link.tools.observe(self._record)
        if self._line_phone is not None and not await self.link.attest_line(self._line_phone):
            raise RuntimeError("the server did not accept the line's caller id")
        settings = self.settings
        agent = Receptionist(
            self.link, settings.rules, settings.agent_greeting, settings.business_model
        )
        self.link.attach(self._session)
        await self._session.start(agent)
        greeting = Turn(user=None, agent=[agent.greeting])
        if agent.greeting_handle is not None:
            await agent.greeting_handle
        greeting.ms = (time.monotonic() - started) * 1000
        self.turns.append(greeting)
        return greeting

    def _record(self, record: ToolCallRecord) -> None:
        if self._current is not None:
            self._current.tool_calls.append(record)

    @property
    def ending(self) -> bool:
        """The model ended the call (or the session closed)."""
        link = self.link
        return link is not None and (link.ending or link.closed.is_set())

    async def say(self, text: str) -> Turn:
        """One caller turn; returns the agent's answer and the tool calls it made."""
        turn = Turn(user=text)
        self._current = turn
        failures = len(self.link.llm_failures) if self.link else 0
        started = time.monotonic()
        try:
            result = await self.agent_session.run(user_input=text, input_modality=self._modality)
        except Exception as exc:  # the session could not even run the turn
            turn.error = str(exc) or type(exc).__name__
            turn.agent.append(APOLOGY)
        else:
            turn.result = result
            for event in result.events:
                if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
                    turn.agent.append(event.item.text_content or "")
        finally:
            turn.ms = (time.monotonic() - started) * 1000
            self._current = None
        if self.link and len(self.link.llm_failures) > failures:
            turn.error = f"the LLM failed: {self.link.llm_failures[-1]}"
        self.turns.append(turn)
        if self.link is not None and self.link.ending:
            self._current = turn  # end_conversation is sent after the goodbye: keep recording
            try:
                await asyncio.wait_for(self.link.wait_ended(), timeout=ENDING_TIMEOUT_S)
            finally:
                self._current = None
        return turn

    async def close(self) -> Summary | None:
        """End the call (a hang-up unless the model ended it) and return the summary."""
        if self._session is None or self.link is None:
            return None
        with contextlib.suppress(RuntimeError):
            await self._session.aclose()
        await asyncio.wait_for(self.link.finish(), timeout=ENDING_TIMEOUT_S)
        return self.link.summary

    def document(self, summary: Summary | None) -> dict[str, Any]:
        """The `--json` document: `{session_id, turns, tool_calls, usage, summary}`."""
        usage = self.link.usage() if self.link else None
        return {
            "session_id": self.session_id,
            "model": llm_model_name(self.settings),
            "turns": [turn.as_dict() for turn in self.turns],
            "tool_calls": [call.as_dict() for turn in self.turns for call in turn.tool_calls],
            "usage": usage.model_dump(mode="json") if usage else None,
            "summary": summary.model_dump(mode="json") if summary else None,
        }
