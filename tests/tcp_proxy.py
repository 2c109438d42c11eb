"""A loopback TCP proxy whose link can be cut and restored: a database outage on demand.

The proxy runs on a background thread with its own event loop, so a test (sync or async) can put
it between a server process and Postgres and drive it from the outside:

    with TcpProxy("127.0.0.1", 5432) as proxy:      # listening on 127.0.0.1:<proxy.port>
        ...
        proxy.cut()      # abort every open connection and stop listening (new ones are refused)
        proxy.restore()  # listen again on the same port and forward as before
        proxy.reset()    # abort every open connection but keep listening (a brief blip)
        proxy.hold()     # keep connections open but forward nothing (a stalled network)...
        proxy.release()  # ...then forward what was held, and everything after it
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 64 * 1024


class TcpProxy:
    """Forwards `host`:`port` (a free loopback port) to `target_host`:`target_port`."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._generation = 0
        """Bumped by every cut or reset: a connection set up across one is dropped too."""
        self._flowing: asyncio.Event | None = None
        self.held_bytes = 0
        """Bytes that arrived while held (a test waits for them to know a request is stuck)."""

    # --- driven from the test's thread ----------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Abort every proxied connection and refuse new ones (the port is closed)."""
        self._call(self._cut())

    def reset(self) -> None:
        """Abort every proxied connection but keep listening: a blip, as when Postgres restarts."""
        self._call(self._reset())

    def restore(self) -> None:
        """Listen again on the same port; new connections are forwarded."""
        self._call(self._listen())

    def hold(self) -> None:
        """Stop forwarding (both ways) until `release()`; connections stay open."""
        self.held_bytes = 0
        self._call(self._set_flowing(False))

    def release(self) -> None:
        self._call(self._set_flowing(True))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # --- on the proxy's loop --------------------------------------------------------------------

    async def _set_flowing(self, flowing: bool) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True, family=socket.AF_INET
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _reset(self) -> None:
        self._generation += 1
        for writer in list(self._links):
            writer.transport.abort()  # an immediate RST, like a dropped link
        self._links.clear()

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stop listening: connecting now fails with "connection refused"
        await self._reset()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _shutdown(self) -> None:
        await self._cut()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        if pending:
            await asyncio.wait(pending, timeout=2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if generation != self._generation or self._server is None:  # cut meanwhile
            writer.transport.abort()
            up_writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._links |= pair
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links -= pair
            for each in pair:
                each.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if self._flowing is not None and not self._flowing.is_set():
                    self.held_bytes += len(data)
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            writer.transport.abort()
