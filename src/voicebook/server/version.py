"""The server's version on every HTTP answer (DESIGN §3), so a client can tell what it talks to.

A deployed SDK meets newer servers; the header lets it (and an operator reading a response) see
which one answered. It is the outermost middleware, so errors, rate-limit refusals and CORS
preflights carry it too.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebook import __version__
from voicebook.models import VERSION_HEADER


class ServerVersion:
    """ASGI middleware adding `X-Voicebook-Version: <version>` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._header = (VERSION_HEADER.lower().encode(), __version__.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self._header]
            await send(message)

        await self.app(scope, receive, send_with_version)
