"""Many tool calls at once on one session, over HTTP against a real `voicebook serve` on SQLite
and Postgres: each answers 2xx or 4xx (never 500), each is on the session's log exactly once, and
the log's event ids stay 1, 2, 3, … without a gap or a repeat (the session row is the lock that
serialises them; without it most of these calls collided)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend_servers import BACKENDS, server_on
from servers import Server

API_KEY = "concurrency-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
}
PARALLEL = 20
TIMEOUT_S = 60.0


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with server_on(request.param, ENV, request, tmp_path_factory) as running:
        yield running


def calls(slots: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """A mix of reads and writes: bookings of distinct slots, one slot twice, lists, a bad call."""
    mix: list[tuple[str, dict[str, Any]]] = []
    for i in range(PARALLEL):
        kind = i % 4
        if kind == 0:
            mix.append(("book_appointment", {"slot_id": slots[i // 4]["slot_id"]}))
        elif kind == 1:
            mix.append(("fetch_slots", {"limit": 3}))
        elif kind == 2:
            mix.append(("retrieve_appointments", {}))
        else:
            mix.append(("book_appointment", {"slot_id": slots[0]["slot_id"]}))
    return mix


async def test_twenty_parallel_tool_calls_on_one_session(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=TIMEOUT_S) as http:
        session_id = (await http.post("/session/start")).json()["session_id"]
        identify = await http.post(
            "/tools/identify_user",
            json={"session_id": session_id, "phone": "+1 415 555 0142", "name": "Par"},
        )
        assert identify.status_code == 200, identify.text
        found = await http.post(
            "/tools/fetch_slots", json={"session_id": session_id, "limit": PARALLEL}
        )
        slots = found.json()["slots"]
        assert len(slots) >= PARALLEL // 4
        keys = [uuid.uuid4().hex for _ in range(PARALLEL)]

        async def one(key: str, name: str, args: dict[str, Any]) -> httpx.Response:
            return await http.post(
                f"/tools/{name}",
                json={"session_id": session_id, **args},
                headers={"Idempotency-Key": key},
            )

        answers = await asyncio.gather(
            *(one(k, n, a) for k, (n, a) in zip(keys, calls(slots), strict=True))
        )
        statuses = [a.status_code for a in answers]
        assert all(s < 500 for s in statuses), [a.text for a in answers if a.status_code >= 500]
        assert statuses.count(200) >= PARALLEL // 2, statuses
        events = (await http.get(f"/session/{session_id}/events")).json()
        tools = (await http.get(f"/session/{session_id}/tools")).json()
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    logged = [call["id"] for call in tools]
    assert sorted(k for k in logged if k in keys) == sorted(keys)  # each call exactly once
    assert len(set(logged)) == len(logged)
