"""`voicebook serve` drops clients that trickle their request (headers or body) or connect and send
nothing, caps its connections with a JSON 503, and leaves WebSockets alone. Real servers, raw
sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from servers import Server, running_server

GIVE_UP_S = 60.0
"""How long a test keeps trickling before it calls the server's patience unlimited (the bug)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("hardening")
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}",
        "VOICEBOOK_HEADER_TIMEOUT_S": "1",
        "VOICEBOOK_BODY_TIMEOUT_S": "1",
    }
    with running_server(env, directory) as running:
        yield running


@contextlib.contextmanager
def raw(server: Server) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=GIVE_UP_S) as sock:
        yield sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (reads end, or a write is refused)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def trickle_until_dropped(sock: socket.socket, data: bytes) -> bool:
    """Send `data` a byte at a time, every 0.2 s, until the server drops us (True) or we give up."""
    deadline = time.monotonic() + GIVE_UP_S
    for byte in data:
        if closed_by_server(sock):
            return True
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return closed_by_server(sock)


def wait_dropped(sock: socket.socket) -> bool:
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if closed_by_server(sock):
            return True
        time.sleep(0.05)
    return False


def test_a_client_trickling_its_headers_is_dropped(server: Server) -> None:
    with raw(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert trickle_until_dropped(sock, b"X-Slow: " + b"a" * 2000 + b"\r\n\r\n")


def test_a_connection_that_sends_nothing_is_dropped(server: Server) -> None:
    with raw(server) as sock:
        assert wait_dropped(sock)


def test_a_client_trickling_its_body_is_dropped(server: Server) -> None:
    body = json.dumps({"padding": "x" * 500}).encode()
    head = (
        b"POST /session/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with raw(server) as sock:
        sock.sendall(head)
        assert trickle_until_dropped(sock, body)


def test_prompt_clients_keep_their_connection_across_requests(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            assert http.get("/healthz").status_code == 200


async def test_a_websocket_outlives_the_header_deadline(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        session_id = (await http.post("/session/start")).json()["session_id"]
    async with websockets.connect(f"{server.ws_url}/session/{session_id}/events") as ws:
        with raw(server) as idle:  # opened after the socket: dropped after the deadline
            assert await asyncio.to_thread(wait_dropped, idle)
        pong = await ws.ping()
        await pong  # still open, still answering
    assert "too slow to send its request" in server.log()


def test_past_the_connection_cap_requests_get_a_json_503(tmp_path: Path) -> None:
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}",
        "VOICEBOOK_MAX_CONNECTIONS": "3",
    }
    with running_server(env, tmp_path) as capped, contextlib.ExitStack() as held:
        idle = [held.enter_context(raw(capped)) for _ in range(3)]
        busy = httpx.get(f"{capped.url}/healthz")
        assert busy.status_code == 503
        assert busy.json()["error"]["code"] == "server_busy"
        assert busy.headers["Retry-After"] == "1"
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + GIVE_UP_S
        while httpx.get(f"{capped.url}/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
