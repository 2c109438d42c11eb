"""The browser flow end to end, as the frontend and the agent run it (DESIGN §1, §3).

A real `voicebook serve` process per backend (SQLite, then Postgres); the page's side is a real
WebSocket client (`websockets`), the agent's side real HTTP tool calls (`httpx`) with the service
key and idempotency keys. Everything the page sees is checked in order, id by id.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from livekit import api
from websockets.exceptions import ConnectionClosed

from backend_servers import BACKENDS, database_on
from servers import Server, running_server

API_KEY = "test-service-key-0123456789"
LIVEKIT_URL = "wss://voicebook-flow.livekit.cloud"
LIVEKIT_KEY = "APIflowtest"
LIVEKIT_SECRET = "flow-secret-0123456789abcdef0123456789abcdef"
AGENT_NAME = "flow-test-agent"
ZONE = ZoneInfo("America/New_York")
PHONE = "(415) 555-0123"
RAW_PHONE_FORMS = ("555-0123", "5550123", "4155550123", "+14155550123")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
RECV_TIMEOUT_S = 10.0

BASE_ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
    # These tests read until the server closes; the page's own close (which the server waits
    # for after session_closed) has its test below.
    "VOICEBOOK_WEBSOCKET_LINGER_S": "0",
    "LIVEKIT_URL": LIVEKIT_URL,
    "LIVEKIT_API_KEY": LIVEKIT_KEY,
    "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
    "LIVEKIT_AGENT_NAME": AGENT_NAME,
}
SUMMARY_APPOINTMENT_FIELDS = (
    "id",
    "contact_number",
    "name",
    "date",
    "time",
    "status",
    "start",
    "end",
)


# --- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend, shared by the tests of this module (sessions keep them apart)."""
    directory = tmp_path_factory.mktemp(f"flow-{request.param}")
    with (
        database_on(request.param, request, directory) as url,
        running_server({**BASE_ENV, "VOICEBOOK_DATABASE_URL": url}, directory) as running,
    ):
        yield running


@pytest.fixture
async def client(server: Server) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


# --- helpers -----------------------------------------------------------------------------------


def new_key() -> str:
    """An idempotency key as the LLM's tool-call id would be."""
    return f"call_{uuid.uuid4().hex[:16]}"


async def tool(
    client: httpx.AsyncClient,
    tool_name: str,
    session_id: str,
    key: str | None = None,
    /,
    **args: Any,
) -> httpx.Response:
    """A tool call exactly as the agent's SDK posts it."""
    return await client.post(
        f"/tools/{tool_name}",
        json={"session_id": session_id, **args},
        headers={**AUTH, "Idempotency-Key": key or new_key()},
    )


async def ok(response: Any) -> dict[str, Any]:
    answer = await response if asyncio.iscoroutine(response) else response
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    return answer.json()


async def start_session(client: httpx.AsyncClient) -> dict[str, Any]:
    """POST /session/start with no body and no credentials, as the page does."""
    answer = await client.post("/session/start")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"session_id", "ws_url"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", body["session_id"])
    return body


async def receive(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` events from the socket (raw text kept for the phone check)."""
    events = []
    for _ in range(count):
        text = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)
        assert isinstance(text, str)
        for raw in RAW_PHONE_FORMS:
            assert raw not in text, f"raw phone {raw!r} on the socket: {text}"
        events.append(json.loads(text))
    return events


async def receive_until_closed(ws: Any) -> list[dict[str, Any]]:
    """Every event until the server closes the socket; asserts the close is a normal 1000."""
    events = []
    try:
        while True:
            events.extend(await receive(ws, 1))
    except ConnectionClosed:
        pass
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
    return events


def check_envelope(event: dict[str, Any], session_id: str) -> None:
    assert set(event) == {"id", "type", "session_id", "timestamp", "payload"}, event
    assert isinstance(event["id"], int)
    assert event["session_id"] == session_id
    assert datetime.fromisoformat(event["timestamp"]).utcoffset() is not None
    assert isinstance(event["payload"], dict)


def check_log(events: list[dict[str, Any]], session_id: str, first_id: int = 1) -> None:
    """Envelopes well formed, ids first_id, first_id+1, … with no gap or duplicate."""
    for event in events:
        check_envelope(event, session_id)
    assert [e["id"] for e in events] == list(range(first_id, first_id + len(events)))


def shape(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(type, state or tool name) per event: the sequence the page reacts to."""
    out = []
    for event in events:
        payload = event["payload"]
        if event["type"] == "status":
            out.append(("status", payload["state"]))
        elif event["type"] == "tool_call":
            out.append(("tool_call", payload["name"]))
        else:
            out.append((event["type"], ""))
    return out


def bookable_slot(slots: list[dict[str, Any]]) -> dict[str, Any]:
    """A slot comfortably in the future (with zero notice the first one may start any second)."""
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    return next(s for s in slots if datetime.fromisoformat(s["start"]) >= soon)


async def identify_and_slot(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    await ok(tool(client, "identify_user", session_id, phone=PHONE, name="Ada Lovelace"))
    slots = (await ok(tool(client, "fetch_slots", session_id, limit=20)))["slots"]
    return bookable_slot(slots)


# --- the flow ----------------------------------------------------------------------------------


async def test_browser_flow(server: Server, client: httpx.AsyncClient) -> None:
    started = await start_session(client)
    session_id = started["session_id"]
    assert started["ws_url"] == f"{server.ws_url}/session/{session_id}/events"

    async with websockets.connect(started["ws_url"]) as ws:
        token = await ok(client.post("/livekit/token", json={"session_id": session_id}))
        assert token["room"] == session_id
        assert token["url"] == LIVEKIT_URL
        assert token["identity"]
        claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(token["token"])
        assert claims.identity == token["identity"]
        assert claims.video is not None and claims.video.room == session_id
        assert claims.room_config is not None
        dispatch = list(claims.room_config.agents)
        assert [a.agent_name for a in dispatch] == [AGENT_NAME]
        assert json.loads(dispatch[0].metadata) == {"session_id": session_id}

        keys = [new_key() for _ in range(5)]
        identified = await ok(
            tool(client, "identify_user", session_id, keys[0], phone=PHONE, name="Ada Lovelace")
        )
        assert identified["user"]["phone_masked"] == "***0123"
        slots = await ok(tool(client, "fetch_slots", session_id, keys[1], limit=20))
        assert slots["timezone"] == "America/New_York"
        slot = bookable_slot(slots["slots"])
        booked = await ok(
            tool(client, "book_appointment", session_id, keys[2], slot_id=slot["slot_id"])
        )
        appointment = booked["appointment"]
        assert appointment["status"] == "confirmed"
        assert datetime.fromisoformat(appointment["start"]) == datetime.fromisoformat(slot["start"])
        listed = await ok(tool(client, "retrieve_appointments", session_id, keys[3]))
        assert [a["id"] for a in listed["appointments"]] == [appointment["id"]]
        ended = await ok(
            tool(client, "end_conversation", session_id, keys[4], preferences=["Prefers email"])
        )

        events = await receive_until_closed(ws)

    check_log(events, session_id)
    assert shape(events) == [
        ("status", "connected"),
        ("tool_call", "identify_user"),
        ("tool_call", "fetch_slots"),
        ("tool_call", "book_appointment"),
        ("tool_call", "retrieve_appointments"),
        ("tool_call", "end_conversation"),
        ("status", "ended"),
        ("summary", ""),
        ("session_closed", ""),
    ]
    assert events[0]["payload"] == {"session_id": session_id, "state": "connected"}
    calls = [e["payload"] for e in events if e["type"] == "tool_call"]
    assert [c["id"] for c in calls] == keys
    for call in calls:
        assert call["status"] == "completed", call
        assert call["detail"] and call["detail"][-1] in ".?!", call
        assert set(call) >= {"id", "name", "status", "detail", "timestamp"}
        stamp = datetime.fromisoformat(call["timestamp"].replace("Z", "+00:00"))
        assert stamp.utcoffset() is not None
    for call in (calls[0], calls[2], calls[3]):  # the details that speak of the caller
        assert "***0123" in call["detail"], call["detail"]
    assert calls[0]["args"]["phone"] == "***0123"

    summary = events[-2]["payload"]
    assert summary == ended["summary"]
    assert summary["session_id"] == session_id
    assert summary["contact_number"] == "***0123"
    assert isinstance(summary["summary"], str) and summary["summary"]
    assert "Prefers email" in summary["preferences"]
    assert isinstance(summary["cost"], dict)
    [summarised] = summary["booked_appointments"]
    local = datetime.fromisoformat(slot["start"]).astimezone(ZONE)
    assert summarised["id"] == appointment["id"]
    assert summarised["date"] == local.strftime("%Y-%m-%d")
    assert summarised["time"] == local.strftime("%H:%M")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", summarised["date"])
    assert re.fullmatch(r"\d{2}:\d{2}", summarised["time"])
    assert summarised["contact_number"] == "***0123"
    assert summarised["status"] == "confirmed"
    assert set(summarised) >= set(SUMMARY_APPOINTMENT_FIELDS)
    assert events[-1]["payload"] == {"session_id": session_id}

    view = await ok(client.get(f"/session/{session_id}"))
    assert view["state"] == "ended"
    assert view["user"]["phone_masked"] == "***0123"
    assert view["summary"]["booked_appointments"] == summary["booked_appointments"]
    assert view["summary"]["contact_number"] == "***0123"
    assert view["ended_at"] is not None

    tools = await ok(client.get(f"/session/{session_id}/tools"))
    assert tools == calls  # the five calls, oldest first, as the socket showed them

    after = await ok(client.get(f"/session/{session_id}/events", params={"after": 3}))
    assert after == events[3:]
    assert [e["id"] for e in after] == list(range(4, 10))


async def test_resume_after_a_dropped_socket(server: Server, client: httpx.AsyncClient) -> None:
    started = await start_session(client)
    session_id = started["session_id"]

    async with websockets.connect(started["ws_url"]) as ws:
        first = await receive(ws, 1)
        slot = await identify_and_slot(client, session_id)
        first += await receive(ws, 2)  # identify_user, fetch_slots
    check_log(first, session_id)
    last = first[-1]["id"]

    # Offline: three calls the page does not see.
    await ok(tool(client, "book_appointment", session_id, slot_id=slot["slot_id"]))
    await ok(tool(client, "retrieve_appointments", session_id))
    await ok(tool(client, "fetch_slots", session_id, part_of_day="morning"))

    async with websockets.connect(f"{started['ws_url']}?after={last}") as ws:
        missed = await receive(ws, 3)
        await ok(tool(client, "end_conversation", session_id))
        live = await receive_until_closed(ws)

    check_log(missed + live, session_id, first_id=last + 1)
    assert shape(missed) == [
        ("tool_call", "book_appointment"),
        ("tool_call", "retrieve_appointments"),
        ("tool_call", "fetch_slots"),
    ]
    assert shape(live) == [
        ("tool_call", "end_conversation"),
        ("status", "ended"),
        ("summary", ""),
        ("session_closed", ""),
    ]
    log = await ok(client.get(f"/session/{session_id}/events"))
    assert log == first + missed + live


async def test_resume_from_every_point_replays_the_same_log(
    server: Server, client: httpx.AsyncClient
) -> None:
    started = await start_session(client)
    session_id = started["session_id"]
    await identify_and_slot(client, session_id)
    await ok(client.post(f"/session/{session_id}/end"))
    log = await ok(client.get(f"/session/{session_id}/events"))
    assert len(log) == 6
    for after in (0, 1, 4, 5):
        async with websockets.connect(f"{started['ws_url']}?after={after}") as ws:
            assert await receive_until_closed(ws) == log[after:]


async def test_resume_past_the_end_of_an_ended_session_closes(
    server: Server, client: httpx.AsyncClient
) -> None:
    started = await start_session(client)
    session_id = started["session_id"]
    await ok(client.post(f"/session/{session_id}/end"))
    log = await ok(client.get(f"/session/{session_id}/events"))
    assert log[-1]["type"] == "session_closed"
    async with websockets.connect(f"{started['ws_url']}?after={log[-1]['id']}") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1000


async def test_after_session_closed_the_socket_waits_for_the_client_to_close(
    tmp_path: Path,
) -> None:
    """The page closes the socket itself a moment after `session_closed` and only then shows
    the call as ended; a server that closed first made it show "disconnected, tap Connect"
    meanwhile. The socket still answers a ping after the last event, and the close is the
    client's, answered with 1000."""
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'linger.db'}",
        "VOICEBOOK_WEBSOCKET_LINGER_S": "300",
    }
    with running_server(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            started = await start_session(client)
            async with websockets.connect(started["ws_url"]) as ws:
                await ok(client.post(f"/session/{started['session_id']}/end"))
                types = []
                while not types or types[-1] != "session_closed":
                    types += [e["type"] for e in await receive(ws, 1)]
                assert types[-2:] == ["summary", "session_closed"]
                await asyncio.wait_for(await ws.ping(), RECV_TIMEOUT_S)  # still open
                assert ws.close_code is None
            assert ws.close_code == 1000
            assert ws.protocol.close_sent is not None and ws.protocol.close_rcvd is not None
            assert not ws.protocol.close_rcvd_then_sent  # the client spoke first


async def test_page_hang_up(server: Server, client: httpx.AsyncClient) -> None:
    started = await start_session(client)
    session_id = started["session_id"]

    async with websockets.connect(started["ws_url"]) as ws:
        await ok(tool(client, "identify_user", session_id, phone=PHONE))
        before = await receive(ws, 2)  # connected, identify_user
        first = await ok(client.post(f"/session/{session_id}/end"))
        second = await ok(client.post(f"/session/{session_id}/end"))
        closing = await receive_until_closed(ws)

    assert first == second
    summary = first["summary"]
    assert summary["session_id"] == session_id
    assert summary["contact_number"] == "***0123"
    assert summary["booked_appointments"] == []
    check_log(before + closing, session_id)
    assert shape(closing) == [("status", "ended"), ("summary", ""), ("session_closed", "")]
    assert closing[1]["payload"] == summary

    late = await tool(client, "fetch_slots", session_id)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "session_ended"
    token = await client.post("/livekit/token", json={"session_id": session_id})
    assert token.status_code == 409
    assert token.json()["error"]["code"] == "session_ended"

    view = await ok(client.get(f"/session/{session_id}"))
    assert view["state"] == "ended"
    assert view["end_reason"] == "page"
    assert view["summary"] == summary
    log = await ok(client.get(f"/session/{session_id}/events"))
    assert log == before + closing  # the refused late call is not an event of an ended session


async def test_end_conversation_as_the_first_call(
    server: Server, client: httpx.AsyncClient
) -> None:
    started = await start_session(client)
    session_id = started["session_id"]
    async with websockets.connect(started["ws_url"]) as ws:
        ended = await ok(tool(client, "end_conversation", session_id))
        events = await receive_until_closed(ws)
    check_log(events, session_id)
    assert shape(events) == [
        ("status", "connected"),
        ("tool_call", "end_conversation"),
        ("status", "ended"),
        ("summary", ""),
        ("session_closed", ""),
    ]
    assert events[-2]["payload"] == ended["summary"]
    assert ended["summary"]["contact_number"] is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_idle_session_is_closed(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {**BASE_ENV, "VOICEBOOK_SESSION_IDLE_MINUTES": "0.02"}  # 1.2 s
    if backend == "postgres":
        env["VOICEBOOK_DATABASE_URL"] = request.getfixturevalue("pg_url")
    else:
        env["VOICEBOOK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'voicebook.db'}"
    with running_server(env, tmp_path) as idle_server:
        async with httpx.AsyncClient(base_url=idle_server.url, timeout=10) as http:
            started = await start_session(http)
            session_id = started["session_id"]
            loop = asyncio.get_running_loop()
            opened = loop.time()
            async with websockets.connect(started["ws_url"]) as ws:
                events = await asyncio.wait_for(receive_until_closed(ws), 10)
            assert loop.time() - opened < 10
            check_log(events, session_id)
            assert shape(events) == [
                ("status", "connected"),
                ("status", "ended"),
                ("summary", ""),
                ("session_closed", ""),
            ]
            view = await ok(http.get(f"/session/{session_id}"))
            assert view["state"] == "ended"
            assert view["end_reason"] == "idle"
            assert view["summary"] == events[2]["payload"]
