"""The API server inside the current process, on a free loopback port.

For `voicebook call --text` without a server: the agent still talks to a real server over real
HTTP (the same code paths as in production), on the embedded default store, with no second
terminal to start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn

from voicebook.config import Settings
from voicebook.server.app import create_app


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signals alone: Ctrl-C belongs to the host command."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[str]:
    """Serve `settings`' app on 127.0.0.1 (a free port) until the block exits; yields the URL.

    Migrations are applied at startup as `voicebook serve` applies them."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        log_config=None,
        ws_per_message_deflate=False,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name="voicebook-embedded-server")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it stopped
                raise RuntimeError("the embedded server stopped during startup")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
