"""Privacy on the wire (DESIGN §3): phone numbers masked wherever a person can see them, found by
what they are (not by the key they arrive under), and session ids never whole in a log line.

Units for `mask_phones`, `redact_args` and the JSON log formatter, then the public surface: a real
`voicebook serve` whose event log (HTTP and WebSocket), session view, summary and log output are
searched for every form of the numbers the calls carried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import websockets

from servers import Server, running_server
from voicebook.scheduling.ids import new_session_id
from voicebook.scheduling.phone import mask_phones
from voicebook.scheduling.requests import redact_args
from voicebook.server import observability
from voicebook.server.observability import JsonFormatter, redact_log_text, short_id

SF = "***0123"
SF_DIGITS = "4155550123"
OTHER_DIGITS = "4155550199"
NUMBERS = (SF_DIGITS, OTHER_DIGITS)

# --- mask_phones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("(415) 555-0123", SF),
        ("415.555.0123", SF),
        ("415-555-0123", SF),
        ("4155550123", SF),
        ("+14155550123", SF),
        ("+1 415 555 0123", SF),
        ("1 415 555 0123", SF),
        ("+44 20 7946 0958", "***0958"),
        ("call me at 415-555-0123 please", f"call me at {SF} please"),
        ("notes: knee follow-up, call 415 555 0123.", f"notes: knee follow-up, call {SF}."),
        ("Ada (415) 555-0123", f"Ada {SF}"),
        ("Invalid phone +1 415 555 0123 given", f"Invalid phone {SF} given"),
        ("415 555 0123 or 415 555 0199", f"{SF} or ***0199"),
    ],
)
def test_written_numbers_are_masked(text: str, masked: str) -> None:
    assert mask_phones(text, "US") == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("four one five five five five zero one two three", SF),
        ("four one five five five five oh one two three", SF),
        ("my number is four one five, double five five, oh one two three, thanks", None),
        ("Four one five triple five oh one two three.", f"{SF}."),
        ("four one five 555 0123", SF),
        ("it's 4 1 5, 5 5 5, 0 1 2 3", f"it's {SF}"),
        ("at two, four one five five five five zero one two three", f"at two, {SF}"),
        ("plus four four two zero seven nine four six zero nine five eight", "***0958"),
    ],
)
def test_spoken_numbers_are_masked(text: str, masked: str | None) -> None:
    out = mask_phones(text, "US")
    if masked is not None:
        assert out == masked
    else:
        assert out == f"my number is {SF}, thanks"


def test_national_numbers_follow_the_region() -> None:
    assert mask_phones("ring 020 7946 0958", "GB") == "ring ***0958"
    assert mask_phones("ring 020 7946 0958", "gb") == "ring ***0958"


@pytest.mark.parametrize(
    "text",
    [
        "2027-03-01T15:00:00-05:00",
        "2027-03-01T20:00:00Z",
        "2027-03-01T20:00:00.000000+00:00",
        "2027-03-01",
        "slot_20270301T1400Z",
        "apt_0123456789abcdef",
        "usr_4155550123abcd",
        "12:30",
        "0.0077",
        "prices 2.50, 3.75, 0.0077",
        "555-0123",
        "1234567",
        "42",
        "Tuesday, March 2 at 3:00 PM",
        "Booked Tuesday, March 2 at 9:00 AM for ***0123.",
        "I need one or two for three or four people",
        "at 3 o'clock on the 21st",
        '127.0.0.1:54321 - "GET /session/AbCdEf…/events?after=12 HTTP/1.1" 200',
        "",
        "short",
    ],
)
def test_what_is_not_a_phone_number_is_left_alone(text: str) -> None:
    assert mask_phones(text, "US") == text


def test_nested_values_are_masked_and_keys_kept() -> None:
    value = {
        "phone_number": "415-555-0123",
        "caller": {"contact": {"mobile": "+1 415 555 0199"}, "tags": ["vip", "(415) 555-0123"]},
        "415 555 0123": "a key stays as it is",
        "count": 3,
        "flag": True,
        "price": 0.0077,
        "empty": None,
        "as_int": 4155550123,
        "small": 1234567,
        "pair": ("415 555 0123", "x"),
    }
    assert mask_phones(value, "US") == {
        "phone_number": SF,
        "caller": {"contact": {"mobile": "***0199"}, "tags": ["vip", SF]},
        "415 555 0123": "a key stays as it is",
        "count": 3,
        "flag": True,
        "price": 0.0077,
        "empty": None,
        "as_int": SF,
        "small": 1234567,
        "pair": [SF, "x"],
    }


def test_a_value_without_numbers_comes_back_as_it_is() -> None:
    text = "Found 5 free slots from Tuesday, March 2 at 9:00 AM."
    assert mask_phones(text, "US") is text


def test_redact_args_masks_every_key_and_drops_the_session() -> None:
    args = {
        "session_id": new_session_id(),
        "phone": "555 01",  # not a number, but the phone argument: masked anyway
        "name": "Ada 415.555.0123",
        "notes": "call me at 415 555 0199",
        "caller": {
            "phone_number": "+14155550123",
            "alt": ["four one five five five five zero one nine nine"],
        },
        "reason": None,
    }
    assert redact_args(args, "US") == {
        "phone": "***5501",
        "name": f"Ada {SF}",
        "notes": "call me at ***0199",
        "caller": {"phone_number": SF, "alt": ["***0199"]},
    }


# --- logs ---------------------------------------------------------------------------------------


def _record(name: str, msg: str, *args: Any, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("number +1 415 555 0123 refused")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)


def test_short_id_keeps_a_prefix_only() -> None:
    sid = new_session_id()
    assert short_id(sid).startswith(sid[:6])
    assert sid not in short_id(sid)
    assert len(short_id(sid)) < len(sid)


def test_log_lines_hold_no_session_id_and_no_phone() -> None:
    sid = new_session_id()
    other = new_session_id()
    formatter = JsonFormatter()
    token = observability.session_id.set(sid)
    try:
        lines = [
            formatter.format(
                _record(
                    "uvicorn.access",
                    '%s - "%s %s HTTP/%s" %d',
                    "127.0.0.1:50000",
                    "GET",
                    f"/session/{sid}/events?after=4155550123",
                    "1.1",
                    200,
                )
            ),
            formatter.format(
                _record(
                    "uvicorn.error",
                    '%s - "WebSocket %s" [accepted]',
                    "127.0.0.1:1",
                    f"/session/{other}/events",
                )
            ),
            formatter.format(_record("voicebook", "caller %s said (415) 555-0123", sid, exc=True)),
        ]
    finally:
        observability.session_id.reset(token)
    for line in lines:
        entry = json.loads(line)
        assert sid not in line and other not in line
        assert entry["session_id"] == short_id(sid)
        for value in entry.values():
            assert SF_DIGITS not in re.sub(r"\D", "", value)
    assert f"/session/{short_id(sid)}/events" in json.loads(lines[0])["message"]
    assert f"/session/{short_id(other)}/events" in json.loads(lines[1])["message"]
    assert "ValueError" in json.loads(lines[2])["error"]


def test_redact_log_text_shortens_session_ids_by_shape() -> None:
    sid = new_session_id()
    for text in (
        f"GET /session/{sid}/tools HTTP/1.1",
        f"ended session_id={sid}",
        json.dumps({"session_id": sid}),
    ):
        assert sid not in redact_log_text(text)
        assert sid[:6] in redact_log_text(text)


# --- through the public surface -----------------------------------------------------------------

API_KEY = "privacy-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
}
WAIT_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("privacy")
    env = {**ENV, "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}"}
    with running_server(env, directory) as running:
        yield running


async def _tool(
    http: httpx.AsyncClient, tool: str, session_id: str, /, **args: Any
) -> httpx.Response:
    return await http.post(
        f"/tools/{tool}",
        json={"session_id": session_id, **args},
        headers={**AUTH, "Idempotency-Key": f"call_{uuid.uuid4().hex[:16]}"},
    )


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, dict keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _assert_no_number(value: Any, where: str) -> None:
    for text in _strings(value):
        digits = re.sub(r"\D", "", text)
        for number in NUMBERS:
            assert number not in digits, f"{number} in {where}: {text!r}"
        assert "four one five" not in text.lower(), f"a spoken number in {where}: {text!r}"


async def _socket_log(ws_url: str) -> list[dict[str, Any]]:
    """The whole log as the page's WebSocket replays it (the session has ended), to its last
    event, `session_closed`; then the client closes, as the page does."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(ws_url) as ws:
        while not events or events[-1]["type"] != "session_closed":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT_S)))
    return events


def _log_entries(server: Server) -> list[dict[str, Any]]:
    entries = []
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"raw": line}
        entries.append(entry if isinstance(entry, dict) else {"raw": line})
    return entries


def _wait_for_log(server: Server, found: Any) -> list[dict[str, Any]]:
    """Poll the server's output until `found(entries)` holds (the access line of the last
    request is written after its answer)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        entries = _log_entries(server)
        if found(entries):
            return entries
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def _future_slots(slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    return [s for s in slots if datetime.fromisoformat(s["start"]) >= soon]


async def test_no_number_and_no_session_id_reaches_page_summary_or_log(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http:
        started = _ok(await http.post("/session/start"))
        sid = started["session_id"]

        # Failed calls that spell the phone differently: an unknown field, a nested object.
        misspelled = await _tool(http, "identify_user", sid, phone_number="(415) 555-0123")
        assert misspelled.status_code == 422, misspelled.text
        nested = await _tool(
            http,
            "identify_user",
            sid,
            caller={"phone": "+1 415 555 0123", "other": ["415.555.0199"]},
        )
        assert nested.status_code == 422, nested.text

        _ok(await _tool(http, "identify_user", sid, phone="(415) 555-0123", name="Ada Lovelace"))
        free = _future_slots(_ok(await _tool(http, "fetch_slots", sid, limit=20))["slots"])
        booked = _ok(
            await _tool(
                http,
                "book_appointment",
                sid,
                slot_id=free[0]["slot_id"],
                notes="call me at 415 555 0199",
            )
        )["appointment"]
        moved = _ok(
            await _tool(
                http,
                "modify_appointment",
                sid,
                appointment_id=booked["id"],
                new_slot_id=free[1]["slot_id"],
            )
        )["appointment"]
        _ok(
            await _tool(
                http,
                "cancel_appointment",
                sid,
                appointment_id=moved["id"],
                reason="will call back from 415-555-0199",
            )
        )
        _ok(
            await http.post(
                "/agent/report",
                json={
                    "session_id": sid,
                    "transcript": [
                        {"role": "user", "text": "my number is 415 555 0123"},
                        {"role": "user", "text": "four one five five five five zero one nine nine"},
                        {"role": "agent", "text": "That's (415) 555-0123, right?"},
                    ],
                },
                headers={**AUTH, "Idempotency-Key": f"report_{uuid.uuid4().hex[:16]}"},
            )
        )
        ended = _ok(
            await _tool(
                http,
                "end_conversation",
                sid,
                recap="Caller at +1 415 555 0123 booked, moved and cancelled.",
                preferences=["Text 415.555.0199 before visits"],
            )
        )

        log = _ok(await http.get(f"/session/{sid}/events"))
        tools = _ok(await http.get(f"/session/{sid}/tools"))
        view = _ok(await http.get(f"/session/{sid}"))
        # Last: a request whose access line itself carries the session id and a number.
        _ok(await http.get(f"/session/{sid}/events", params={"after": SF_DIGITS}))

    socket = await _socket_log(started["ws_url"])
    assert socket == log
    kinds = {e["type"] for e in log}
    assert {"tool_call", "transcript", "summary"} <= kinds
    failed = [e for e in log if e["type"] == "tool_call" and e["payload"]["status"] == "failed"]
    assert len(failed) == 2  # the misspelled and the nested call are on the page's log
    _assert_no_number(log, "the event log")
    _assert_no_number(socket, "the WebSocket")
    _assert_no_number(tools, "GET /tools")
    _assert_no_number(view, "GET /session")
    _assert_no_number(ended, "the summary")

    short = short_id(sid)
    entries = _wait_for_log(
        server,
        lambda entries: any(
            f"/session/{short}/events?after=" in str(e.get("message", "")) for e in entries
        ),
    )
    assert sid not in server.log()
    _assert_no_number(entries, "the server log")
    about = [e for e in entries if short in json.dumps(e, ensure_ascii=False)]
    assert len(about) >= 10  # the access lines of the calls above
