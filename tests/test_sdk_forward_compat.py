"""A newer server must not break a deployed SDK (DESIGN §3: clients accept event types and enum
values they do not know): they reach the caller, surfaced, never as an exception.

The stream test runs against a real `voicebook serve` whose log holds what a newer worker sharing
the database wrote (a new event type, a new status state, a new tool-call status), then ends the
session so the stream ends as usual. Tool answers are the JSON a newer server would send.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server, running_server
from voicebook import AsyncClient, Client
from voicebook.models import (
    Event,
    StatusEvent,
    SummaryEvent,
    ToolEvent,
    UnknownEvent,
)
from voicebook.sdk import NO_RETRY

API_KEY = "compat-key"
NEWER_EVENTS = [
    ("mood", {"caller": "calm"}),
    ("status", {"session_id": "", "state": "on_hold"}),
    (
        "tool_call",
        {
            "id": "call-queued",
            "name": "book_appointment",
            "status": "queued",
            "detail": "Booking is queued behind a deposit.",
            "timestamp": "2027-03-02T15:00:00+00:00",
            "priority": 2,
        },
    ),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compat") / "x.db"


@pytest.fixture(scope="module")
def server(database: Path) -> Iterator[Server]:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{database}", "VOICEBOOK_API_KEY": API_KEY}
    with running_server(env, database.parent) as running:
        yield running


def written_by_a_newer_server(database: Path, session_id: str) -> None:
    """Append NEWER_EVENTS to the session's log as another (newer) worker would."""
    with sqlite3.connect(database, timeout=30) as db:
        (last, created_at) = db.execute(
            "SELECT id, created_at FROM session_events WHERE session_id = ? ORDER BY id DESC",
            (session_id,),
        ).fetchone()
        for offset, (kind, payload) in enumerate(NEWER_EVENTS, start=1):
            if "session_id" in payload:
                payload = {**payload, "session_id": session_id}
            db.execute(
                "INSERT INTO session_events (session_id, id, type, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_id, last + offset, kind, json.dumps(payload), created_at),
            )
        db.execute(
            "UPDATE sessions SET last_event_id = ? WHERE id = ?",
            (last + len(NEWER_EVENTS), session_id),
        )


@pytest.fixture
def session(server: Server, database: Path) -> str:
    with Client(server.url, API_KEY, retry=NO_RETRY) as vb:
        session_id = vb.start_session().session_id
        written_by_a_newer_server(database, session_id)
        vb.end_session(session_id)
    return session_id


def check_log(events: list[Event]) -> None:
    kinds = [event.type for event in events]
    assert kinds[-1] == "session_closed"
    assert {"mood", "status", "tool_call", "summary"} <= set(kinds)
    typed = [event.typed for event in events]
    (mood,) = [e for e in typed if isinstance(e, UnknownEvent)]
    assert mood.type == "mood"
    assert mood.payload == {"caller": "calm"}
    states = [e.payload.state for e in typed if isinstance(e, StatusEvent)]
    assert "on_hold" in states
    (queued,) = [e.payload for e in typed if isinstance(e, ToolEvent)]
    assert (queued.status, queued.id) == ("queued", "call-queued")
    assert any(isinstance(e, SummaryEvent) for e in typed)


def test_the_stream_surfaces_what_it_does_not_know(server: Server, session: str) -> None:
    with Client(server.url, API_KEY, retry=NO_RETRY) as vb, vb.stream_events(session) as stream:
        check_log(list(stream))


async def test_the_async_stream_surfaces_what_it_does_not_know(
    server: Server, session: str
) -> None:
    async with (
        AsyncClient(server.url, API_KEY, retry=NO_RETRY) as vb,
        vb.stream_events(session) as stream,
    ):
        check_log([event async for event in stream])


def test_the_log_and_the_tool_calls_over_http(server: Server, session: str) -> None:
    with Client(server.url, API_KEY, retry=NO_RETRY) as vb:
        check_log(vb.session_events(session))
        (queued,) = vb.session_tools(session)
        assert queued.status == "queued"


def newer_server(answer: dict[str, Any]) -> httpx.Client:
    """An HTTP client whose every request gets `answer`, as a newer server would send it."""
    return httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=answer)))


APPOINTMENT = {
    "id": "a1",
    "start": "2027-03-02T15:00:00+00:00",
    "end": "2027-03-02T15:30:00+00:00",
    "status": "awaiting_deposit",
    "label": "Tuesday, March 2 at 3:00 PM",
    "deposit_url": "https://pay.example/a1",
}


def test_a_tool_answer_with_a_new_status_is_read() -> None:
    with newer_server({"appointment": APPOINTMENT}) as http, Client(http_client=http) as vb:
        booked = vb.book_appointment("s", slot_id="x")
    assert booked.appointment.status == "awaiting_deposit"


def test_a_new_identity_level_and_verification_status_are_read() -> None:
    user = {"id": "u1", "phone_masked": "***0123"}
    answer = {"status": "voice_matched", "level": "biometric", "user": user}
    with newer_server(answer) as http, Client(http_client=http) as vb:
        verified = vb.verify_caller("s", code="123456")
    assert (verified.status, verified.level) == ("voice_matched", "biometric")


def test_a_known_type_with_an_unreadable_payload_is_unknown_not_an_error() -> None:
    event = Event.model_validate(
        {
            "id": 7,
            "type": "transcript",
            "session_id": "s",
            "timestamp": "2027-03-02T15:00:00+00:00",
            "payload": {"speaker": "user", "words": ["hi"]},
        }
    )
    typed = event.typed
    assert isinstance(typed, UnknownEvent)
    assert typed.payload == {"speaker": "user", "words": ["hi"]}
