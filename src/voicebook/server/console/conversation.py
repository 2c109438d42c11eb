"""One Try-it conversation: the receptionist of `voicebook call --text` (`TextCall`, the same
agent class) talking to this very server, and its turns as the console's JSON messages.

Why in-process: the agent's requests (start the session, the tools, its reports, the summary)
reach the app that holds the operator's WebSocket through an ASGI transport, so they never
leave the process: no loopback URL to guess behind a proxy or among several workers, and the
session's events are published in this worker, where the Calls tab's socket may be listening.
Each request runs in a task of its own, shielded, as a request over the network would: a
conversation ended mid-turn stops waiting for it, never stops a booking half-way.

The agent (livekit-agents) is imported only when a conversation starts, so the server starts
and answers without the agent extra; `unavailable()` says what is missing, in a sentence
naming the variable to set or the command to run.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.types import ASGIApp

from voicebook.config import Settings
from voicebook.scheduling.phone import mask_phones

if TYPE_CHECKING:
    from voicebook.agent.textmode import TextCall, Turn
    from voicebook.agent.tools import ToolCallRecord
    from voicebook.sdk import AsyncClient

log = logging.getLogger(__name__)
IN_PROCESS_URL = "http://voicebook.in-process"
"""The base URL of the agent's requests: they go to the app itself, never over the network."""
MAX_OUTPUT_CHARS = 2000
"""A tool's output as the card shows it (a list of slots can be long; the log has it all)."""


@dataclass(frozen=True)
class Unavailable:
    """Why this server cannot hold a conversation, as a stable code and a sentence."""

    code: str
    message: str


@functools.cache
def _extra_missing() -> tuple[str, ...]:
    """The agent extra's missing distributions (what is installed does not change while the
    server runs, and /console/api/me asks on every page load)."""
    from voicebook.agent import agent_extra_missing

    return tuple(agent_extra_missing())


def unavailable(settings: Settings) -> Unavailable | None:
    """None when a conversation can start: the agent extra is installed and an LLM configured."""
    missing = _extra_missing()
    if missing:
        from voicebook.agent import INSTALL_COMMAND

        return Unavailable(
            "agent_extra_missing",
            f"Try it needs the agent extra ({', '.join(missing)} not installed): run "
            f"{INSTALL_COMMAND} where the server runs, then restart it.",
        )
    from voicebook.agent.providers import LLM_VARIABLES, missing_variables

    if missing_variables(settings, voice=False):
        return Unavailable(
            "llm_not_configured",
            f"Try it needs a language model: set {LLM_VARIABLES} for the server "
            "(in its environment or .env), then restart it.",
        )
    return None


class ConversationFailed(Exception):
    """The conversation could not start or go on; `code` and `message` are for the page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


START_FAILED = (
    "The receptionist could not start a session on this server; the server's log says why. "
    "Try again in a moment."
)
LLM_FAILED = {
    "code": "llm_failed",
    "message": "The language model did not answer this turn, so the receptionist apologised. "
    "Check the model's settings and the provider (the server's log has the cause), then try "
    "again.",
}
TURN_FAILED = {
    "code": "turn_failed",
    "message": "That turn could not be completed; the server's log says why. Try again.",
}


class ShieldedTransport(httpx.AsyncBaseTransport):
    """An ASGI transport to `app` whose requests run to their end even when the agent stops
    waiting (each in its own task, with its own context, so nothing of the app's request
    handling leaks into the conversation's)."""

    def __init__(self, app: ASGIApp, client_host: str) -> None:
        self._inner = httpx.ASGITransport(
            app=app, client=(client_host, 0), raise_app_exceptions=False
        )
        self._running: set[asyncio.Task[httpx.Response]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.ensure_future(self._inner.handle_async_request(request))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)


async def open_conversation(app: ASGIApp, settings: Settings, client_host: str) -> Conversation:
    """A new conversation (not started yet). The agent's modules are imported in a thread the
    first time: livekit-agents takes a second or two to import, and the event loop serves
    everybody else meanwhile."""
    try:
        await asyncio.to_thread(importlib.import_module, "voicebook.agent.textmode")
        return Conversation(app, settings, client_host)
    except Exception as exc:  # an agent extra that is installed but broken
        log.warning("the Try-it agent could not be loaded: %s", exc)
        raise ConversationFailed("start_failed", START_FAILED) from exc


class Conversation:
    """A `TextCall` against the app, whose turns come back as the page's messages."""

    def __init__(self, app: ASGIApp, settings: Settings, client_host: str) -> None:
        """`client_host`: the operator's address, which the session's starts are counted
        against, as a page's would be."""
        from voicebook.agent.textmode import TextCall
        from voicebook.agent.tools import AGENT_RETRY, AGENT_TIMEOUT
        from voicebook.sdk import AsyncClient

        self._region = settings.default_region
        self._http = httpx.AsyncClient(transport=ShieldedTransport(app, client_host))
        self._client: AsyncClient = AsyncClient(
            IN_PROCESS_URL,
            settings.service_key(),
            timeout=AGENT_TIMEOUT,
            retry=AGENT_RETRY,
            http_client=self._http,
        )
        self._call: TextCall = TextCall(settings, self._client)

    @property
    def session_id(self) -> str:
        return self._call.session_id

    @property
    def ending(self) -> bool:
        """The receptionist ended the call (it said goodbye)."""
        return self._call.ending

    async def start(self) -> dict[str, Any]:
        """Start the session and the agent; the greeting turn."""
        try:
            return self._turn(await self._call.start())
        except Exception as exc:  # the store, the rate limit or the agent: a sentence, not a stack
            log.warning("a Try-it conversation could not start: %s", exc)
            raise ConversationFailed("start_failed", START_FAILED) from exc

    async def say(self, text: str) -> dict[str, Any]:
        """One operator line and the receptionist's answer, with its tool calls."""
        try:
            turn = await self._call.say(text)
        except Exception as exc:  # e.g. the goodbye's end_conversation never reached the server
            log.warning("a Try-it turn failed: %s", exc)
            return {"type": "turn", "agent": [], "tool_calls": [], "error": TURN_FAILED}
        if turn.error:
            log.warning("a Try-it turn's LLM failed: %s", turn.error)
        return self._turn(turn)

    async def close(self) -> dict[str, Any] | None:
        """End the call (a hang-up unless the receptionist ended it): its summary, with the
        cost, as the server built it (None when the session never started)."""
        try:
            summary = await self._call.close()
        finally:
            await self._http.aclose()
        if summary is None:
            return None
        masked: dict[str, Any] = self._mask(summary.model_dump(mode="json"))
        return masked

    def _mask(self, value: Any) -> Any:
        return mask_phones(value, self._region)

    def _turn(self, turn: Turn) -> dict[str, Any]:
        return {
            "type": "turn",
            "agent": [self._mask(line) for line in turn.agent if line],
            "tool_calls": [self._tool_call(record) for record in turn.tool_calls],
            "ms": round(turn.ms),
            "error": LLM_FAILED if turn.error else None,
        }

    def _tool_call(self, record: ToolCallRecord) -> dict[str, Any]:
        output = record.output[:MAX_OUTPUT_CHARS]
        return {
            "name": record.name,
            "arguments": self._mask(record.arguments),
            "ok": record.ok,
            "code": None if record.ok else record.error_code or "failed",
            "message": None if record.ok else self._mask(output),
            "output": self._mask(output) if record.ok else None,
            "ms": round(record.ms),
        }
