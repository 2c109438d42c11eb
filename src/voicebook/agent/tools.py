"""The eight tools the model calls, each one an HTTP call to the server through the SDK (and,
for a long FAQ, `answer_question`, answered in the agent: faq.py).

Why it looks like this:
- The LLM's tool-call id is the idempotency key, so a call delivered twice (a retried LLM
  request, a replayed turn after a barge-in) is answered from the server's idempotency store and
  never books twice.
- A call that changes appointments is guarded: interruptions are refused while it runs and the
  HTTP request is shielded, so a barge-in cannot abandon a booking half-way (the server would
  commit it and the model would never hear that it did). A write whose turn the caller had
  already interrupted before it began is not sent at all: the caller stopped it in time.
- A caller waits on the line: each attempt has a couple of seconds, a call a few seconds in all
  (`AGENT_TIMEOUT`, `AGENT_RETRY`, `TOOL_DEADLINE_S`); a call slower than `FILLER_DELAY_S`
  makes the agent say a short filler ("One moment while I book that."), so there is no dead
  air; and when the server cannot be reached the model gets a sentence it can say
  (`OUTAGE_READ`, `OUTAGE_WRITE`), never the SDK's text with the server's URL (that goes to
  the log).
- On a call from a known line (a SIP caller id the worker attested) identify_user has no phone
  parameter and a phone the model adds anyway is dropped: the model cannot name another number
  (the server would refuse it too, `caller_fixed`), and there is no verify_caller to call.
- Failures become `ToolError` with the server's sentence, which the model can say or act on;
  `slot_taken` also carries the alternatives, so the model can offer them at once.
- Outputs are compact JSON, paid for as input tokens on every later turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from livekit.agents import RunContext, ToolError, function_tool
from livekit.agents.llm import RawFunctionTool

from voicebook.agent.faq import NAME as FAQ_TOOL
from voicebook.agent.faq import SCHEMA as FAQ_SCHEMA
from voicebook.agent.faq import answer as faq_answer
from voicebook.agent.schemas import LINE_FIXED, WRITE_TOOLS, line_tools, tool_schema
from voicebook.errors import (
    ConnectionFailed,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SlotTaken,
    TimedOut,
    Unauthorized,
    UnexpectedResponse,
    VerificationUnavailable,
    VoicebookError,
    WrongCode,
)
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

AGENT_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
"""Each attempt of an agent request: a caller on the line hears silence while it waits (the SDK's
default, 10 s, was ten seconds of dead air per stuck tool call)."""
AGENT_RETRY = RetryPolicy(max_attempts=3, max_total_s=2.5, base_delay_s=0.2, max_delay_s=1.0)
"""A few quick attempts, none started later than 2.5 s after the first: a server that does not
answer at all costs two attempts, about 4.2 s, then the model hears the failure and can say so
(the SDK's default rides out 30 s of trouble)."""
TOOL_DEADLINE_S = 5.0
"""The most one tool call may take in all, whatever the network does (a backstop over the
per-attempt timeouts and the retry budget)."""
FILLER_DELAY_S = 1.5
"""A tool call slower than this makes the agent say its filler phrase (once)."""
FILLERS: dict[str, str] = {
    "identify_user": "One moment while I look you up.",
    "verify_caller": "One moment while I check that.",
    "fetch_slots": "One moment while I check the schedule.",
    "book_appointment": "One moment while I book that.",
    "retrieve_appointments": "One moment while I pull up your appointments.",
    "cancel_appointment": "One moment while I cancel that.",
    "modify_appointment": "One moment while I move that.",
}
OUTAGE_READ = (
    "The booking system is not answering right now. Tell the caller you are having trouble "
    "reaching the schedule, and offer to try again in a moment or to call back later."
)
OUTAGE_WRITE = (
    "The booking system did not answer, so this may or may not have been done. Tell the caller "
    "you could not confirm it just now, and offer to check again in a moment."
)
NOT_SENT = (
    "Not done: the caller interrupted before this began, so nothing was changed. Ask the "
    "caller what they would like."
)


def agent_client(base_url: str | None, api_key: str | None) -> AsyncClient:
    """The agent's SDK client: `base_url` (else VOICEBOOK_URL, else BACKEND_BASE_URL) with
    the agent's per-attempt timeout and retry policy."""
    return AsyncClient(base_url, api_key, timeout=AGENT_TIMEOUT, retry=AGENT_RETRY)


def is_outage(error: VoicebookError) -> bool:
    """Whether `error` says the server could not do its work at all (unreachable, too slow,
    overloaded, failing, misconfigured), as opposed to a refusal the caller should hear."""
    if isinstance(error, VerificationUnavailable):
        return False  # the server's sentence: booking still works without a code
    if type(error) is RateLimited:  # not its subclasses: those are about the caller's number
        return True
    return isinstance(
        error, (ConnectionFailed, ServiceUnavailable, ServerError, Unauthorized, UnexpectedResponse)
    )


def spoken_message(error: VoicebookError, name: str) -> str:
    """The sentence the model reads for `error` from tool `name`: the server's own for a refusal,
    else the outage sentence (the SDK's text names the server's URL and the exception)."""
    if not is_outage(error):
        return error.message
    return OUTAGE_WRITE if name in WRITE_TOOLS else OUTAGE_READ


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_output(response: WireModel) -> str:
    """The server's answer as the model reads it: JSON without nulls or empty fields."""
    return compact_json(response.model_dump(mode="json", exclude_none=True))


def tool_error(error: VoicebookError, name: str = "") -> ToolError:
    """The error the model reads from tool `name`: the code and the sentence to say
    (`spoken_message`; and, for a taken slot, the alternatives the server offered)."""
    body: dict[str, Any] = {"error": error.code, "message": spoken_message(error, name)}
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
        self,
        client: AsyncClient,
        session_id: str,
        observer: ToolObserver | None = None,
        *,
        deadline_s: float = TOOL_DEADLINE_S,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.deadline_s = deadline_s
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
            try:
                response = await asyncio.wait_for(
                    self.client.call_tool(
                        name, self.session_id, arguments, idempotency_key=call_id
                    ),
                    self.deadline_s,
                )
            except asyncio.TimeoutError:
                raise TimedOut(
                    f"No answer to {name} within {self.deadline_s:g} s.",
                    url=self.client.base_url,
                ) from None
        except VoicebookError as exc:
            if is_outage(exc):  # the whole story for the operator; the model gets a sentence
                logger.warning("tool %s failed: %s", name, exc)
            record.error_code, record.output = exc.code, spoken_message(exc, name)
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
                if context.speech_handle.interrupted:
                    # The caller stopped this turn before the write began: send nothing.
                    logger.info("%s not sent: the caller interrupted before it began", name)
                    raise ToolError(NOT_SENT)
                # From here no barge-in stops it: the write runs, shielded, to the end.
                context.disallow_interruptions()
            try:
                filler = FILLERS.get(name, "One moment, please.")
                async with context.with_filler(filler, delay=FILLER_DELAY_S):
                    return await tools.output(name, arguments, context.function_call.call_id)
            except VoicebookError as exc:
                raise tool_error(exc, name) from None

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
