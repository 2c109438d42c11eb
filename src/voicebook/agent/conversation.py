"""One Try-it conversation for the console: the receptionist of `voicebook call --text`
(`TextCall`, the same agent class) talking to the server that holds the operator's WebSocket,
and its turns as the console's JSON messages.

Why in-process: the agent's requests (start the session, the tools, its reports, the summary)
reach that app through an ASGI transport, so they never leave the process: no loopback URL to
guess behind a proxy or among several workers, and the session's events are published in this
worker, where the Calls tab's socket may be listening. Each request runs in a task of its own,
shielded, as a request over the network would: a conversation ended mid-turn stops waiting for
it, never stops a booking half-way.

The server never imports this module (DESIGN §2): `voicebook serve` attaches it to the app
(`voicebook.cli.served_app`), the way `voicebook call --text` runs the same agent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from starlette.types import ASGIApp

from voicebook.agent.textmode import TextCall, Turn
from voicebook.agent.tools import AGENT_RETRY, AGENT_TIMEOUT, ToolCallRecord
from voicebook.config import Settings
from voicebook.scheduling.phone import mask_phones
from voicebook.sdk import AsyncClient

log = logging.getLogger(__name__)
IN_PROCESS_URL = "http://voicebook.in-process"
"""The base URL of the agent's requests: they go to the app itself, never over the network."""
MAX_OUTPUT_CHARS = 2000
"""A tool's output as the card shows it (a list of slots can be long; the log has it all)."""


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


class Conversation:
    """A `TextCall` against the app, whose turns come back as the page's messages."""

    def __init__(self, app: ASGIApp, settings: Settings, client_host: str) -> None:
        """`client_host`: the operator's address, which the session's starts are counted
        against, as a page's would be."""
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
        """Start the session and the agent; the greeting turn (any failure is the server's to
        turn into a sentence)."""
        return self._turn(await self._call.start())

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
