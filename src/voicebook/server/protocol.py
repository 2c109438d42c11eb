"""The HTTP protocol `voicebook serve` runs: uvicorn's httptools protocol with client deadlines.

uvicorn times out an idle keep-alive connection, but not a client that connects and sends nothing,
nor one that trickles its headers or its body a byte at a time: each such connection would hold a
slot (and a task) for as long as the client likes. Here a request's headers must arrive within
VOICEBOOK_HEADER_TIMEOUT_S of the connection or of the request's first byte, and its body within
VOICEBOOK_BODY_TIMEOUT_S of its headers; otherwise the connection is dropped.

Past VOICEBOOK_MAX_CONNECTIONS (uvicorn's limit_concurrency) a request is answered 503 as every
other error is: JSON, with Retry-After (uvicorn's own answer is plain text).
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from voicebook.config import load_settings
from voicebook.server.errors import error_payload

_BUSY = json.dumps(
    error_payload("server_busy", "The server is at its connection limit; please try again.")
).encode()


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BUSY)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BUSY})


@cache
def _timeouts() -> tuple[float, float]:
    """(header, body) deadlines: read once per worker, from the settings serve started with."""
    settings = load_settings()
    return settings.header_timeout_s, settings.body_timeout_s


class DeadlineProtocol(HttpToolsProtocol):
    """One timer per connection, armed while the server waits on the client for a request."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s, self.body_timeout_s = _timeouts()
        self.capacity, self.limit_concurrency = self.limit_concurrency, None  # answered below
        self.deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.logger.info("dropped a client too slow to send its request")
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout_s)
        busy = self.capacity is not None and (
            len(self.connections) >= self.capacity or len(self.tasks) >= self.capacity
        )
        if not busy:
            super().on_headers_complete()
            return
        app, self.app = self.app, _over_capacity
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol has its own pings and timeouts
        super().handle_websocket_upgrade()
