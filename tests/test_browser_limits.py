"""Browser endpoints read only what they return, and every one is rate-limited per client address
and per session, shared across servers through Redis; X-Forwarded-For counts only from a trusted
proxy. Against real `voicebook serve` processes."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pydantic import TypeAdapter
from websockets.exceptions import InvalidStatus

from servers import Server, free_port, running_server
from voicebook.config import Settings
from voicebook.models import ToolCallEvent
from voicebook.server.limits import BrowserLimits
from voicebook.server.observability import Metrics
from voicebook.store.postgres import PostgresStore
from voicebook.store.sqlite import SqliteStore

CALLS = 600
PAGE_MAX = 500
_tool_calls = TypeAdapter(list[ToolCallEvent])


def tool_call(n: int) -> dict[str, Any]:
    return ToolCallEvent(
        id=f"call_{n}",
        name="fetch_slots",
        status="completed",
        detail=f"Call number {n}.",
        timestamp=datetime(2030, 1, 1, tzinfo=timezone.utc),
        args={"date": "2030-01-02"},
        result={"slots": []},
    ).model_dump(mode="json")


async def seed_long_session(store: SqliteStore | PostgresStore) -> str:
    """A session with CALLS tool calls, each between two long transcript lines (what /tools used
    to read whole), in one transaction: the setup, not what is tested."""
    session_id = secrets.token_urlsafe(16)
    now = datetime.now(timezone.utc)
    events: list[tuple[str, dict[str, Any]]] = []
    for n in range(CALLS):
        line = {"role": "user", "text": "words " * 200, "final": True}
        events += [("transcript", line), ("tool_call", tool_call(n)), ("transcript", line)]
    await store.open()
    try:
        async with store.transaction() as tx:
            session = await tx.insert_session(session_id, now)
            await tx.append_events(session, events, now)
    finally:
        await store.close()
    return session_id


def sqlite_env(tmp_path: Path, **extra: str) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "voicebook.db"
    return path, {"VOICEBOOK_DATABASE_URL": f"sqlite:///{path}", **extra}


def refused(answer: httpx.Response) -> None:
    """429 rate_limited, with a Retry-After within the window and a sentence."""
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].endswith(".") and " " in error["message"]
    assert 1 <= int(answer.headers["Retry-After"]) <= 60


# --- /tools and /events read a bounded page, in SQL -------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_tools_lists_only_tool_calls_paged(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        path, env = sqlite_env(tmp_path)
        store: SqliteStore | PostgresStore = SqliteStore(path)
    else:
        url = request.getfixturevalue("pg_url")
        env, store = {"VOICEBOOK_DATABASE_URL": url}, PostgresStore(url)
    session_id = await seed_long_session(store)
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # The existing page's call: no parameters, a JSON list of ToolCallEvent, oldest first.
            first = await http.get(f"/session/{session_id}/tools")
            assert first.status_code == 200
            listed = first.json()
            assert [c["id"] for c in listed] == [f"call_{n}" for n in range(PAGE_MAX)]
            assert _tool_calls.validate_python(listed)[0] == ToolCallEvent(**tool_call(0))
            # The rest, a page at a time, following each full page's link: each call once, in order.
            seen, url = [], f"/session/{session_id}/tools?limit=128"
            while url:
                answer = await http.get(url)
                assert answer.status_code == 200 and len(answer.json()) <= 128
                seen += [c["id"] for c in answer.json()]
                url = answer.links.get("next", {}).get("url")
            assert seen == [f"call_{n}" for n in range(CALLS)]
            after = await http.get(f"/session/{session_id}/tools", params={"after": 3 * 599})
            assert [c["id"] for c in after.json()] == [f"call_{CALLS - 1}"]
            for params in ({"limit": PAGE_MAX + 1}, {"limit": 0}, {"after": -1}):
                answer = await http.get(f"/session/{session_id}/tools", params=params)
                assert answer.status_code == 422, params
            events = await http.get(f"/session/{session_id}/events")
            assert len(events.json()) == PAGE_MAX  # bounded too
            assert (await http.get(f"/session/{session_id}/events?limit=501")).status_code == 422


def test_tool_calls_are_read_from_their_own_index(tmp_path: Path) -> None:
    """SQLite's plan for the page's query walks the tool-call index, not the session's log."""
    path, _ = sqlite_env(tmp_path)
    asyncio.run(seed_long_session(SqliteStore(path)))
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM session_events WHERE session_id = ? AND "
            "type = 'tool_call' AND id > ? ORDER BY id LIMIT ?",
            ("x", 0, 10),
        ).fetchall()
    assert "session_events_tool_calls" in str(plan), plan


# --- rate limits --------------------------------------------------------------------------------


async def start(http: httpx.AsyncClient) -> str:
    answer = await http.post("/session/start")
    assert answer.status_code == 200, answer.text
    return answer.json()["session_id"]


async def handshake(server: Server, session_id: str) -> int:
    """The WebSocket handshake's status: 101 when it opens, else the refusal's."""
    try:
        async with websockets.connect(f"{server.ws_url}/session/{session_id}/events"):
            return 101
    except InvalidStatus as error:
        return error.response.status_code


async def test_every_browser_route_spends_from_the_address_budget(tmp_path: Path) -> None:
    _, env = sqlite_env(tmp_path, VOICEBOOK_RATE_LIMIT_PER_ADDRESS="7/minute")
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            session_id = await start(http)  # 1
            routes = [
                http.get(f"/session/{session_id}"),
                http.get(f"/session/{session_id}/tools"),
                http.get(f"/session/{session_id}/events"),
                http.post("/livekit/token", json={"session_id": session_id}),  # 503: no LiveKit
                http.get(f"/session/{secrets.token_urlsafe(16)}"),  # 404s count as well
            ]
            for answer in [await route for route in routes]:  # 2-6
                assert answer.status_code in (200, 404, 503), answer.text
            assert await handshake(server, session_id) == 101  # 7
            assert await handshake(server, session_id) == 429
            refused(await http.get(f"/session/{session_id}"))
            refused(await http.post(f"/session/{session_id}/end"))
            refused(await http.post("/session/start"))
            assert (await http.get("/healthz")).status_code == 200  # ops routes are not browser's
            metrics = (await http.get("/metrics")).text
            assert 'voicebook_rate_limited_total{budget="address"} 4.0' in metrics


async def test_each_session_has_its_own_budget(tmp_path: Path) -> None:
    _, env = sqlite_env(tmp_path, VOICEBOOK_RATE_LIMIT_PER_SESSION="4/minute")
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            busy, quiet = await start(http), await start(http)
            for path in ("", "/tools", "/events"):
                assert (await http.get(f"/session/{busy}{path}")).status_code == 200
            assert await handshake(server, busy) == 101
            refused(await http.get(f"/session/{busy}/tools"))
            refused(await http.post("/livekit/token", json={"session_id": busy}))
            assert await handshake(server, busy) == 429
            assert (await http.get(f"/session/{quiet}")).status_code == 200


@pytest.mark.postgres
async def test_budgets_are_shared_by_servers_through_redis(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "VOICEBOOK_DATABASE_URL": pg_url,
        "VOICEBOOK_REDIS_URL": redis_url,
        "VOICEBOOK_RATE_LIMIT_PER_SESSION": "6/minute",
    }
    with running_server(env, tmp_path) as a, running_server(env, tmp_path) as b:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):
            session_id = await start(on_a)
            for _ in range(3):
                assert (await on_a.get(f"/session/{session_id}")).status_code == 200
                assert (await on_b.get(f"/session/{session_id}/tools")).status_code == 200
            # Six spent in all: each server alone would still allow six.
            refused(await on_a.get(f"/session/{session_id}"))
            refused(await on_b.get(f"/session/{session_id}"))


def forwarded(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{n}"}


async def test_a_forged_forwarded_for_does_not_escape_the_limit(tmp_path: Path) -> None:
    _, env = sqlite_env(tmp_path, VOICEBOOK_RATE_LIMIT_PER_ADDRESS="5/minute")
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            answers = [await http.post("/session/start", headers=forwarded(n)) for n in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    refused(answers[5])


async def test_a_trusted_proxy_gives_each_client_its_budget(tmp_path: Path) -> None:
    _, env = sqlite_env(
        tmp_path,
        VOICEBOOK_RATE_LIMIT_PER_ADDRESS="3/minute",
        VOICEBOOK_TRUSTED_PROXIES="127.0.0.1",
    )
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for n in range(8):  # eight clients behind the proxy, one request each
                assert (await http.post("/session/start", headers=forwarded(n))).status_code == 200
            for _ in range(3):
                assert (await http.get("/healthz", headers=forwarded(1))).status_code == 200
            assert (await http.post("/session/start", headers=forwarded(1))).status_code == 200
            assert (await http.post("/session/start", headers=forwarded(1))).status_code == 200
            refused(await http.post("/session/start", headers=forwarded(1)))


async def test_a_dead_redis_leaves_each_process_counting_on_its_own(tmp_path: Path) -> None:
    """Redis refusing connections: requests are neither refused nor held up by it; this process
    counts them itself, and the failure is counted."""
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'voicebook.db'}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_per_session="3/minute",
    )
    metrics = Metrics()
    limits = BrowserLimits(settings, metrics)
    answers = [await limits.hit("session", "some-session") for _ in range(4)]
    assert answers[:3] == [None, None, None]
    assert answers[3] is not None and answers[3].retry_after >= 1
    errors = metrics.registry.get_sample_value("voicebook_rate_limit_storage_errors_total")
    assert errors is not None and errors >= 1
