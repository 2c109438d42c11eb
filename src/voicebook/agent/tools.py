"""The eight tools the model calls, each one an HTTP call to the server through the SDK (and,
for a long FAQ, `answer_question`, answered in the agent: faq.py).

Why it looks like this:
- The LLM's tool-call id is the idempotency key, so a call delivered twice (a retried LLM
  request, a replayed turn after a barge-in) is answered from the server's idempotency store and
  never books twice.
- A call that changes appointments is guarded: interruptions are refused while it runs and the
  HTTP request is shielded, so a barge-in cannot abandon a booking half-way (the server would
  commit it and the model would never hear that it did).
- On a call from a known line (a SIP caller id the worker attested) identify_user has no phone
  parameter and a phone the model adds anyway is dropped: the model cannot name another number
  (the server would refuse it too, `caller_fixed`), and there is no verify_caller to call.
- Failures become `ToolError` with the server's sentence, which the model can say or act on;
  `slot_taken` also carries the alternatives, so the model can offer them at once.
- Outputs are compact JSON, paid for as input tokens on every later turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import RunContext, ToolError, function_tool
from livekit.agents.llm import RawFunctionTool

from voicebook.agent.faq import NAME as FAQ_TOOL
from voicebook.agent.faq import SCHEMA as FAQ_SCHEMA
from voicebook.agent.faq import answer as faq_answer
from voicebook.agent.schemas import LINE_FIXED, WRITE_TOOLS, line_tools, tool_schema
from voicebook.errors import SlotTaken, VoicebookError, WrongCode
from voicebook.models import WireModel
from voicebook.scheduling.business import FaqEntry
from voicebook.sdk import AsyncClient, RetryPolicy

logger = logging.getLogger("voicebook.agent")


@dataclass
class ToolCallRecord:
    """One tool call as the caller's terminal (or a test) sees it."""

    name: str
    arguments: dict[str, Any]
    call_id: str
    ok: bool = False
    output: str = ""
    error_code: str | None = None
    ms: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arguments": self.arguments,
            "call_id": self.call_id,
            "ok": self.ok,
            "output": self.output,
            "error_code": self.error_code,
            "ms": round(self.ms, 1),
        }


ToolObserver = Callable[[ToolCallRecord], None]

AGENT_RETRY = RetryPolicy(max_attempts=3, max_total_s=6.0, base_delay_s=0.25, max_delay_s=2.0)
"""A caller waits on the line while a tool call is retried: a few quick attempts, then the
model hears the failure and can say so (the SDK's default rides out 30 s of trouble)."""


def agent_client(base_url: str | None, api_key: str | None) -> AsyncClient:
    """The agent's SDK client: `base_url` (else VOICEBOOK_URL, else BACKEND_BASE_URL) with
    the agent's retry policy."""
    return AsyncClient(base_url, api_key, retry=AGENT_RETRY)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_output(response: WireModel) -> str:
    """The server's answer as the model reads it: JSON without nulls or empty fields."""
    return compact_json(response.model_dump(mode="json", exclude_none=True))


def tool_error(error: VoicebookError) -> ToolError:
    """The error the model reads: the server's code and sentence (and, for a taken slot, the
    alternatives it offered)."""
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if isinstance(error, WrongCode) and error.attempts_left is not None:
        body["attempts_left"] = error.attempts_left
    if isinstance(error, SlotTaken) and error.alternatives:
        body["alternatives"] = [
            slot.model_dump(mode="json", exclude_none=True) for slot in error.alternatives
        ]
    return ToolError(compact_json(body))


class ServerTools:
    """Calls the server's tools for one session and tells an observer about each call."""

    def __init__(
        self, client: AsyncClient, session_id: str, observer: ToolObserver | None = None
    ) -> None:
        self.client = client
        self.session_id = session_id
        self._observers: list[ToolObserver] = [observer] if observer else []
        self._in_flight: set[asyncio.Task[Any]] = set()

    def observe(self, observer: ToolObserver) -> None:
        self._observers.append(observer)

    def _notify(self, record: ToolCallRecord) -> None:
        for observer in self._observers:
            try:
                observer(record)
            except Exception:  # an observer is a display; it must never fail a tool call
                logger.exception("tool observer failed")

    async def call(self, name: str, arguments: dict[str, Any], call_id: str) -> WireModel:
        """Call tool `name` on the server; the answer model, or the SDK error it raised.

        Writes run to the end even if the caller of this coroutine is cancelled."""
        response, _ = await self._run(name, arguments, call_id)
        return response

    async def output(self, name: str, arguments: dict[str, Any], call_id: str) -> str:
        """As `call`, but the answer as the model reads it (`tool_output`)."""
        _, record = await self._run(name, arguments, call_id)
        return record.output

    async def _run(
        self, name: str, arguments: dict[str, Any], call_id: str
    ) -> tuple[WireModel, ToolCallRecord]:
        task = asyncio.ensure_future(self._send(name, arguments, call_id))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await (asyncio.shield(task) if name in WRITE_TOOLS else task)

    async def _send(
        self, name: str, arguments: dict[str, Any], call_id: str
    ) -> tuple[WireModel, ToolCallRecord]:
        record = ToolCallRecord(name, dict(arguments), call_id)
        try:
            response = await self.client.call_tool(
                name, self.session_id, arguments, idempotency_key=call_id
            )
        except VoicebookError as exc:
            record.error_code, record.output = exc.code, exc.message
            raise
        else:
            record.ok, record.output = True, tool_output(response)
            return response, record
        finally:
            record.ms = (time.monotonic() - record.started_at) * 1000
            if record.ok or record.error_code:
                self._notify(record)

    def answered_here(
        self, name: str, arguments: dict[str, Any], call_id: str, output: str
    ) -> None:
        """Tell the observers about a tool the agent answered itself, without the server (the
        FAQ search): the terminal and the evals see it like any other call."""
        self._notify(ToolCallRecord(name, dict(arguments), call_id, ok=True, output=output))

    async def drain(self) -> None:
        """Wait for the tool calls still running (a shielded write may outlive its turn), so the
        session is not ended under them."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


def build_function_tools(
    tools: ServerTools,
    end_conversation: Callable[[dict[str, Any], RunContext], Any],
    *,
    known_line: bool = False,
    faq: tuple[FaqEntry, ...] | None = None,
) -> list[RawFunctionTool]:
    """The function tools; `end_conversation` is handed the arguments of that tool.

    `known_line`: the line vouched for the caller, so identify_user takes no phone and there is
    no verify_caller (see the module doc). `faq`: the FAQ is too long for the prompt, so the
    model searches it with `answer_question`, answered here in the agent (faq.py)."""

    def make(name: str) -> RawFunctionTool:
        # null means "not given" (models send it for optional parameters); the session is
        # always this call's, whatever the model says; a known line's number is the line's.
        dropped = {"session_id"} | (
            {LINE_FIXED} if known_line and name == "identify_user" else set()
        )

        async def run(raw_arguments: dict[str, object], context: RunContext) -> str:
            arguments = {
                k: v for k, v in raw_arguments.items() if v is not None and k not in dropped
            }
            if name == "end_conversation":
                return await end_conversation(arguments, context)
            if name in WRITE_TOOLS:
                # Already interrupted: the write still runs, shielded, to the end.
                with contextlib.suppress(RuntimeError):
                    context.disallow_interruptions()
            try:
                return await tools.output(name, arguments, context.function_call.call_id)
            except VoicebookError as exc:
                raise tool_error(exc) from None

        run.__name__ = name
        return function_tool(run, raw_schema=tool_schema(name, known_line=known_line))

    built = [make(name) for name in line_tools(known_line)]
    if faq is not None:
        entries = faq

        async def answer_question(raw_arguments: dict[str, object], context: RunContext) -> str:
            question = str(raw_arguments.get("question") or "")
            output = compact_json(faq_answer(entries, question))
            tools.answered_here(
                FAQ_TOOL, {"question": question}, context.function_call.call_id, output
            )
            return output

        built.append(function_tool(answer_question, raw_schema=FAQ_SCHEMA))
    return built
