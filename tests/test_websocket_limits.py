"""WebSocket limits and delivery, end to end against real `voicebook serve` processes (DESIGN §3).

A client that stops reading is closed with 1013 (and the close says where to resume) while every
tool call keeps answering; a session has a bounded number of sockets per worker (4429 beyond it);
the page may send only small messages (1009 beyond them, from uvicorn and from the app itself);
and many sockets on one session, across two workers, joining and resuming mid-stream with
`?after=`, each receive every event exactly once while calls are being made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from servers import Server, clean_env, free_port, running_process, running_server
from test_scale_and_outage import clients, new_session, ok, phone, server_env, serving, tool
from voicebook.server.websocket import CLOSE_SLOW, CLOSE_TOO_BIG, CLOSE_TOO_MANY, MAX_INBOUND_BYTES

NEVER_S = 30.0
"""Bound on waits for things that must happen (a failure is a hang, not slowness)."""


def sqlite_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return server_env(f"sqlite:///{tmp_path / 'voicebook.db'}", None, **extra)


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), NEVER_S))


async def close_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; its close code and reason."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), NEVER_S)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason


# --- a reader that stops reading ------------------------------------------------------------------


class StalledClient:
    """A WebSocket client on a raw socket with a tiny receive buffer that reads nothing after the
    handshake until told to (`read_all`): a page whose tab froze, or a hostile client."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        host, port = self.protocol.uri.host, self.protocol.uri.port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(NEVER_S)
        self.sock.connect((host, port))
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        while not any(isinstance(e, Response) for e in self._receive()):
            pass

    def _receive(self) -> list[Any]:
        data = self.sock.recv(65536)
        assert data, "the connection ended without a close frame"
        self.protocol.receive_data(data)
        return self.protocol.events_received()

    def read_all(self) -> list[Frame]:
        """Now read: every frame the server sent, up to its close frame."""
        frames: list[Frame] = []
        while not frames or frames[-1].opcode != Opcode.CLOSE:
            frames += [e for e in self._receive() if isinstance(e, Frame)]
        return frames

    def close(self) -> None:
        self.sock.close()


async def test_a_client_that_stops_reading_is_closed_1013_and_nobody_waits(
    tmp_path: Path,
) -> None:
    with running_server(sqlite_env(tmp_path), tmp_path) as server:
        async with clients(server) as (http,):
            session_id = await new_session(http, phone(1))
            stalled = StalledClient(f"{server.ws_url}/session/{session_id}/events")
            try:
                # Big events (200 slots each) fill the socket's buffers quickly; the server must
                # notice the client stopped taking them, whatever else is happening.
                calls, slowest = 0, 0.0
                while "stopped reading" not in server.log():
                    calls += 1
                    assert calls <= 3000, "the stalled socket was never closed"
                    started = time.monotonic()
                    await ok(tool(http, "fetch_slots", session_id, limit=200))
                    slowest = max(slowest, time.monotonic() - started)
                frames = stalled.read_all()
            finally:
                stalled.close()
            events = [json.loads(f.data) for f in frames if f.opcode == Opcode.TEXT]
            close = frames[-1]
            assert close.opcode == Opcode.CLOSE
            code, reason = int.from_bytes(close.data[:2], "big"), close.data[2:].decode()
            assert code == CLOSE_SLOW
            # What it got is the log's beginning, in order, and the close says where to resume.
            assert [e["id"] for e in events] == list(range(1, len(events) + 1))
            assert reason == f"too slow; reconnect with ?after={events[-1]['id']}"
            assert len(events) < calls + 2  # it was cut off before the end of the log
            # Resuming there goes on with the next event.
            resume = f"{server.ws_url}/session/{session_id}/events?after={len(events)}"
            async with connect(resume) as ws:
                rest = [await next_event(ws) for _ in range(3)]
            assert [e["id"] for e in rest] == [len(events) + 1, len(events) + 2, len(events) + 3]
            print(f"measured: {calls} calls while a reader stalled; slowest answer {slowest:.3f} s")


# --- sockets per session --------------------------------------------------------------------------


async def test_a_session_has_at_most_the_configured_sockets(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, VOICEBOOK_WEBSOCKETS_PER_SESSION="3")
    with running_server(env, tmp_path) as server:
        async with clients(server) as (http,):
            session_id, other = await new_session(http), await new_session(http)
            url = f"{server.ws_url}/session/{session_id}/events"
            async with contextlib.AsyncExitStack() as stack:
                held = [await stack.enter_async_context(connect(url)) for _ in range(3)]
                for ws in held:
                    assert (await next_event(ws))["id"] == 1
                async with connect(url) as extra:
                    code, reason = await close_code(extra)
                assert code == CLOSE_TOO_MANY
                assert reason and "at most 3" in reason
                async with connect(f"{server.ws_url}/session/{other}/events") as elsewhere:
                    assert (await next_event(elsewhere))["id"] == 1  # per session, not global
                await held[0].close()

                async def a_place_is_free() -> bool:
                    async with connect(url) as ws:
                        with contextlib.suppress(ConnectionClosed):
                            return (await next_event(ws))["id"] == 1
                    return False

                deadline = time.monotonic() + NEVER_S
                while not await a_place_is_free():
                    assert time.monotonic() < deadline, "a closed socket never freed its place"
                    await asyncio.sleep(0.1)


# --- what the page may send -----------------------------------------------------------------------


@contextlib.contextmanager
def plain_uvicorn(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """The app under uvicorn's own defaults (16 MiB frames), as someone may run it."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "voicebook.server.app:create_app_from_env",
        "--port",
        str(port),
    ]
    log_path = tmp_path / f"uvicorn-{port}.log"
    with running_process(
        argv,
        ready_url=f"http://127.0.0.1:{port}/healthz",
        env=clean_env(env),
        cwd=tmp_path,
        log_path=log_path,
    ) as process:
        yield Server(process, port, log_path)


@pytest.mark.parametrize("runner", ["voicebook serve", "plain uvicorn"])
async def test_a_page_may_send_only_small_messages(tmp_path: Path, runner: str) -> None:
    env = sqlite_env(tmp_path)
    starting = running_server(env, tmp_path) if runner == "voicebook serve" else None
    with starting or plain_uvicorn(env, tmp_path) as server:
        async with clients(server) as (http,):
            session_id = await new_session(http)
            url = f"{server.ws_url}/session/{session_id}/events"
            async with connect(url, max_size=None) as ws:
                assert (await next_event(ws))["id"] == 1
                await ws.send("x" * 100)  # small talk is ignored: the socket streams on
                await ok(tool(http, "identify_user", session_id, phone=phone(2)))
                assert (await next_event(ws))["type"] == "tool_call"
                await ws.send("x" * (MAX_INBOUND_BYTES * 4))
                code, _ = await close_code(ws)
            assert code == CLOSE_TOO_BIG
            async with connect(url) as again:  # the server is fine, and so is the session
                assert [(await next_event(again))["id"] for _ in range(2)] == [1, 2]


# --- exactly once, many sockets, live traffic -----------------------------------------------------


class Reader:
    """One page's socket (or its successive sockets, when it reconnects with ?after=)."""

    def __init__(self, server: Server, session_id: str, after: int = 0) -> None:
        self.base = f"{server.ws_url}/session/{session_id}/events"
        self.first = after + 1
        self.received: list[dict[str, Any]] = []
        self.after = after

    @property
    def last(self) -> int:
        return self.received[-1]["id"] if self.received else self.after

    async def follow(self, reconnect_after: int | None = None) -> None:
        """Read until session_closed; once past `reconnect_after` events, drop the socket and
        resume with ?after=<last id>."""
        while True:
            async with connect(f"{self.base}?after={self.last}", open_timeout=NEVER_S) as ws:
                while True:
                    try:
                        event = await next_event(ws)
                    except ConnectionClosed:
                        assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
                        return
                    self.received.append(event)
                    if reconnect_after is not None and len(self.received) >= reconnect_after:
                        reconnect_after = None
                        break  # leave, and come back where it left off


async def test_many_sockets_receive_every_event_exactly_once_under_live_traffic(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = server_env(pg_url, redis_url, VOICEBOOK_WEBSOCKETS_PER_SESSION="20")
    with serving(tmp_path, env, env) as servers:
        async with clients(*servers) as http:
            session_id = await new_session(http[0], phone(3))
            readers: list[Reader] = []
            tasks: list[asyncio.Task[None]] = []

            def start(server: Server, after: int = 0, reconnect_after: int | None = None) -> None:
                reader = Reader(server, session_id, after)
                readers.append(reader)
                tasks.append(asyncio.create_task(reader.follow(reconnect_after)))

            for i in range(12):  # from the start, on both workers; some will drop and resume
                start(servers[i % 2], reconnect_after=(5 + i) if i % 3 == 0 else None)

            async def traffic(n: int) -> None:
                for k in range(12):
                    await ok(tool(http[(n + k) % 2], "fetch_slots", session_id, limit=3))

            producers = [asyncio.create_task(traffic(n)) for n in range(4)]
            log_now = await ok(http[1].get(f"/session/{session_id}/events"))
            for i in range(6):  # joining mid-stream, resuming from where another page was
                start(servers[i % 2], after=max(0, len(log_now) - i))
            await asyncio.wait_for(asyncio.gather(*producers), NEVER_S * 2)
            await ok(http[1].post(f"/session/{session_id}/end"))
            await asyncio.wait_for(asyncio.gather(*tasks), NEVER_S * 2)

            log = await ok(http[0].get(f"/session/{session_id}/events", params={"limit": 500}))
            assert log[-1]["type"] == "session_closed"
            assert len(log) >= 4 * 12 + 4
            for reader in readers:
                ids = [e["id"] for e in reader.received]
                assert ids == list(range(reader.first, len(log) + 1)), f"lost or repeated: {ids}"
                assert reader.received == log[reader.first - 1 :]
