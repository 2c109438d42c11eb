"""The SDK against a real `voicebook serve`: both clients, typed errors, the event stream.

Every end-to-end test runs once with `Client` and once with `AsyncClient`, through the same code
(`maybe` awaits what the async client returns), which also shows the two speak the same API.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from servers import Server, running_server
from voicebook import errors, models
from voicebook.errors import error_from_body
from voicebook.sdk import AsyncClient, AsyncEventStream, Client, EventStream, RetryPolicy, endpoints
from voicebook.sdk.protocol import Call, Wire, resolve_api_key, resolve_base_url

API_KEY = "k"
_phones = itertools.count(1000)


def server_env(db: Path, **extra: str) -> dict[str, str]:
    return {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{db}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
        **extra,
    }


def phone() -> str:
    """A caller of their own for every test (the server is shared by the module)."""
    return f"+1 415 555 {next(_phones):04d}"


async def maybe(value: Any) -> Any:
    """The value, awaited when the async client returned a coroutine."""
    return await value if inspect.isawaitable(value) else value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sdk")
    # Many sessions per minute from one address: lift the per-address start limit.
    env = server_env(tmp / "x.db", VOICEBOOK_SESSION_RATE_LIMIT="100000")
    with running_server(env, tmp) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def vb(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Any]:
    if request.param == "sync":
        with Client(server.url, API_KEY) as client:
            yield client
    else:
        async with AsyncClient(server.url, API_KEY) as aclient:
            yield aclient


async def identified(vb: Any, name: str | None = None) -> str:
    """A session with a caller who may see all their appointments: started trusted, as a
    signed-in back-end starts it (the claimed level has its own tests in test_trust*.py)."""
    number = phone()
    session = await maybe(vb.start_session(phone=number, name=name))
    await maybe(vb.identify_user(session.session_id, phone=number, name=name))
    return session.session_id


async def collect(stream: EventStream | AsyncEventStream, seen: list[models.Event]) -> None:
    """Iterate the whole stream into `seen` (a thread for the sync stream)."""
    if isinstance(stream, AsyncEventStream):
        async with stream:
            async for event in stream:
                seen.append(event)
        return

    def run() -> None:
        with stream:
            seen.extend(stream)

    await asyncio.to_thread(run)


async def take(stream: EventStream | AsyncEventStream, n: int) -> list[models.Event]:
    """The first `n` events, then the stream is closed (as a page that goes away)."""
    if isinstance(stream, AsyncEventStream):
        taken = [await anext(stream) for _ in range(n)]
        await stream.aclose()
        return taken
    taken = [next(stream) for _ in range(n)]
    stream.close()
    return taken


# --- the package ----------------------------------------------------------------------------------


def test_sdk_imports_no_server_driver_or_livekit() -> None:
    code = (
        "import sys, json\n"
        "import voicebook\n"
        "light = sorted(m for m in ('httpx', 'websockets') if m in sys.modules)\n"
        "import voicebook.sdk, voicebook.errors\n"
        "from voicebook import Client, AsyncClient\n"
        "assert Client is voicebook.sdk.Client and AsyncClient is voicebook.sdk.AsyncClient\n"
        "print(json.dumps({'light': light, 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["light"] == [], "import voicebook must not import httpx or websockets"
    heavy = ("fastapi", "uvicorn", "starlette", "psycopg", "aiosqlite", "livekit", "redis")
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert not loaded & set(heavy), sorted(loaded & set(heavy))
    assert {"httpx", "websockets", "pydantic"} <= loaded


def test_both_clients_have_the_same_methods_and_signatures() -> None:
    public = {n for n in dir(Client) if not n.startswith("_") and callable(getattr(Client, n))}
    apublic = {
        n for n in dir(AsyncClient) if not n.startswith("_") and callable(getattr(AsyncClient, n))
    }
    assert public - {"close"} == apublic - {"aclose"}
    endpoints = {
        "start_session", "get_session", "end_session", "livekit_token", "session_tools",
        "session_events", "identify_user", "fetch_slots", "book_appointment",
        "retrieve_appointments", "cancel_appointment", "modify_appointment", "end_conversation",
        "report", "health", "ready", "stream_events", "call_tool",
    }  # fmt: skip
    assert endpoints <= public
    for name in endpoints - {"stream_events"}:
        assert inspect.signature(getattr(Client, name)) == inspect.signature(
            getattr(AsyncClient, name)
        ), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        assert getattr(Client, name).__doc__, name
    hints = inspect.signature(Client.identify_user)
    assert hints.return_annotation is models.IdentifyUserResponse
    assert list(hints.parameters)[:3] == ["self", "session_id", "phone"]


def test_url_and_key_come_from_arguments_or_the_environment() -> None:
    assert resolve_base_url(None, {}) == "http://127.0.0.1:8000"
    backend = {"BACKEND_BASE_URL": "http://backend:9000/"}
    assert resolve_base_url(None, backend) == "http://backend:9000"
    both = {**backend, "VOICEBOOK_URL": "https://vb.example/api"}
    assert resolve_base_url(None, both) == "https://vb.example/api"
    assert resolve_base_url("http://given:1", both) == "http://given:1"
    with pytest.raises(ValueError, match="http"):
        resolve_base_url("vb.example", {})
    assert resolve_api_key(None, {}) is None
    assert resolve_api_key(None, {"VOICEBOOK_API_KEY": "env"}) == "env"
    assert resolve_api_key("given", {"VOICEBOOK_API_KEY": "env"}) == "given"
    assert resolve_api_key("", {"VOICEBOOK_API_KEY": "env"}) is None  # explicitly none


def test_key_is_sent_as_bearer_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOOK_API_KEY", "secret-from-env")
    monkeypatch.setenv("VOICEBOOK_URL", "https://vb.example")
    with Client() as client, Client(api_key="") as keyless:
        headers = client._wire.request(endpoints.health()).headers
        assert headers["authorization"] == "Bearer secret-from-env"
        assert "authorization" not in keyless._wire.request(endpoints.health()).headers
        assert client.base_url == "https://vb.example"
        assert "secret" not in repr(client)
    booking = Wire("http://vb", "k").request(endpoints.book_appointment("s", slot_id="x"))
    assert booking.headers["idempotency-key"]
    assert json.loads(booking.content) == {"session_id": "s", "slot_id": "x"}


async def test_environment_configures_a_working_client(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICEBOOK_URL", raising=False)
    monkeypatch.setenv("BACKEND_BASE_URL", server.url)
    monkeypatch.setenv("VOICEBOOK_API_KEY", API_KEY)
    with Client() as vb:
        assert await identified(vb)
    async with AsyncClient(timeout=5) as avb:
        assert (await avb.health()).status == "ok"
        assert await identified(avb)


# --- the booking flow -----------------------------------------------------------------------------


async def test_whole_booking_flow(vb: Any) -> None:
    assert (await maybe(vb.health())).status == "ok"
    assert (await maybe(vb.ready())).status == "ready"
    started = await maybe(vb.start_session())
    assert isinstance(started, models.StartSessionResponse)
    sid = started.session_id
    assert started.ws_url.endswith(f"/session/{sid}/events")
    view = await maybe(vb.get_session(sid))
    assert isinstance(view, models.SessionView)
    assert (view.state, view.user) == ("connected", None)

    number = phone()
    who = await maybe(vb.identify_user(sid, phone=number, name="Ada"))
    assert isinstance(who, models.IdentifyUserResponse)
    assert (who.returning, who.user.name, who.user.phone_masked) == (
        False,
        "Ada",
        "***" + number[-4:],
    )

    offered = await maybe(vb.fetch_slots(sid, limit=4))
    assert isinstance(offered, models.FetchSlotsResponse)
    assert len(offered.slots) == 4
    first, second, third = offered.slots[0], offered.slots[1], offered.slots[3]
    later = await maybe(vb.fetch_slots(sid, date=third.start.date(), limit=2))
    assert all(s.start.date() == third.start.date() for s in later.slots)

    booked = await maybe(vb.book_appointment(sid, slot_id=first.slot_id, notes="first visit"))
    assert isinstance(booked, models.BookAppointmentResponse)
    assert (booked.appointment.start, booked.appointment.status) == (first.start, "confirmed")
    assert booked.appointment.notes == "first visit"
    moved = await maybe(
        vb.modify_appointment(sid, appointment_id=booked.appointment.id, new_slot_id=second.slot_id)
    )
    assert isinstance(moved, models.ModifyAppointmentResponse)
    assert moved.previous.id == booked.appointment.id
    assert moved.appointment.start == second.start
    by_start = await maybe(vb.book_appointment(sid, start=third.start.isoformat()))
    cancelled = await maybe(
        vb.cancel_appointment(sid, start=by_start.appointment.start, reason="changed mind")
    )
    assert isinstance(cancelled, models.CancelAppointmentResponse)
    assert cancelled.appointment.status == "cancelled"

    mine = await maybe(vb.retrieve_appointments(sid))
    assert isinstance(mine, models.RetrieveAppointmentsResponse)
    assert [a.id for a in mine.appointments] == [moved.appointment.id]
    everything = await maybe(vb.retrieve_appointments(sid, include_cancelled=True))
    assert len(everything.appointments) > len(mine.appointments)

    reported = await maybe(
        vb.report(
            sid,
            transcript=[
                models.TranscriptLine(role="user", text="Book me in, please."),
                {"role": "agent", "text": "Done."},
            ],
            usage={"llm_input_tokens": 1200, "stt_seconds": 30},
        )
    )
    assert isinstance(reported, models.AgentReportResponse)
    assert (reported.state, reported.events) == ("active", 2)

    ended = await maybe(vb.end_conversation(sid, preferences=["mornings"], recap="Moved a visit."))
    assert isinstance(ended, models.EndConversationResponse)
    summary = ended.summary
    assert "mornings" in summary.preferences
    statuses = {a.id: a.status for a in summary.booked_appointments}
    assert statuses[moved.appointment.id] == "confirmed"
    assert by_start.appointment.id not in statuses  # cancelled: in the actions, not booked
    assert "cancelled" in [a.kind for a in summary.actions]
    again = await maybe(vb.end_session(sid))  # the page's hang-up after the fact: idempotent
    assert isinstance(again, models.EndSessionResponse)
    assert again.summary.summary == summary.summary

    view = await maybe(vb.get_session(sid))
    assert view.state == "ended" and view.summary is not None
    assert view.user is not None and view.user.phone_masked.endswith(number[-4:])
    tools = await maybe(vb.session_tools(sid))
    assert all(isinstance(t, models.ToolCallEvent) for t in tools)
    assert [t.name for t in tools if t.status == "completed"] == [
        "identify_user",
        "fetch_slots",
        "fetch_slots",
        "book_appointment",
        "modify_appointment",
        "book_appointment",
        "cancel_appointment",
        "retrieve_appointments",
        "retrieve_appointments",
        "end_conversation",
    ]
    log = await maybe(vb.session_events(sid))
    assert all(isinstance(e, models.Event) for e in log)
    assert [e.id for e in log] == list(range(1, len(log) + 1))
    assert log[-1].type == "session_closed"
    assert [e.id for e in await maybe(vb.session_events(sid, after=len(log) - 2))] == [
        len(log) - 1,
        len(log),
    ]
    with pytest.raises(errors.SessionEnded) as ended_error:
        await maybe(vb.fetch_slots(sid))
    assert isinstance(ended_error.value, errors.Conflict)
    assert ended_error.value.status == 409


async def test_call_tool_dispatches_by_name_with_the_llms_call_id(vb: Any) -> None:
    sid = await identified(vb)
    slots = await maybe(vb.call_tool("fetch_slots", sid, {"limit": 2}, idempotency_key="call_a1"))
    assert isinstance(slots, models.FetchSlotsResponse)
    assert len(slots.slots) == 2
    tools = await maybe(vb.session_tools(sid))
    assert tools[-1].id == "call_a1"
    with pytest.raises(errors.InvalidInput) as unknown:
        await maybe(vb.call_tool("launch_rocket", sid))
    assert unknown.value.code == "unknown_tool"


# --- typed errors ---------------------------------------------------------------------------------


async def test_double_booking_raises_slot_taken_with_alternatives(vb: Any) -> None:
    first = await identified(vb)
    slot = (await maybe(vb.fetch_slots(first, limit=1))).slots[0]
    await maybe(vb.book_appointment(first, slot_id=slot.slot_id))
    second = await identified(vb)
    with pytest.raises(errors.SlotTaken) as taken:
        await maybe(vb.book_appointment(second, slot_id=slot.slot_id))
    error = taken.value
    assert isinstance(error, errors.Conflict)
    assert (error.code, error.status) == ("slot_taken", 409)
    assert error.request_id
    assert error.message and error.message in str(error)
    assert error.alternatives
    assert all(isinstance(s, models.Slot) for s in error.alternatives)
    assert slot.slot_id not in {s.slot_id for s in error.alternatives}
    booked = await maybe(vb.book_appointment(second, slot_id=error.alternatives[0].slot_id))
    assert booked.appointment.start == error.alternatives[0].start


async def test_another_callers_appointment_is_not_found(vb: Any) -> None:
    owner = await identified(vb)
    slot = (await maybe(vb.fetch_slots(owner, limit=1))).slots[0]
    theirs = (await maybe(vb.book_appointment(owner, slot_id=slot.slot_id))).appointment
    intruder = await identified(vb)
    with pytest.raises(errors.NotFound) as missing:
        await maybe(vb.cancel_appointment(intruder, appointment_id=theirs.id))
    assert (missing.value.code, missing.value.status) == ("not_found", 404)
    with pytest.raises(errors.NotFound):
        await maybe(vb.modify_appointment(intruder, appointment_id=theirs.id, new_start=slot.end))
    with pytest.raises(errors.NotFound):
        await maybe(vb.get_session("no-such-session-0000"))
    still = await maybe(vb.retrieve_appointments(owner))
    assert [a.id for a in still.appointments] == [theirs.id]


async def test_wrong_or_missing_key_is_unauthorized(server: Server) -> None:
    with Client(server.url, API_KEY) as good:
        sid = good.start_session().session_id
    for key in ("wrong", ""):
        with Client(server.url, key) as sync_client, pytest.raises(errors.Unauthorized) as denied:
            sync_client.identify_user(sid, phone=phone())
        assert (denied.value.code, denied.value.status) == ("unauthorized", 401)
        assert denied.value.request_id
        assert denied.value.attempts == 1  # not retried
        async with AsyncClient(server.url, key) as async_client:
            with pytest.raises(errors.Unauthorized):
                await async_client.report(sid, recap="x")
            assert (await async_client.get_session(sid)).state == "connected"  # browser-facing


async def test_each_error_code_has_its_class(vb: Any) -> None:
    sid = (await maybe(vb.start_session())).session_id
    with pytest.raises(errors.NotIdentified):
        await maybe(vb.retrieve_appointments(sid))
    with pytest.raises(errors.InvalidPhone) as bad_phone:
        await maybe(vb.identify_user(sid, phone="not a number"))
    assert isinstance(bad_phone.value, errors.InvalidInput)
    assert bad_phone.value.status == 422
    await maybe(vb.identify_user(sid, phone=phone(), idempotency_key=f"id-{sid}"))
    with pytest.raises(errors.IdempotencyConflict):
        await maybe(vb.identify_user(sid, phone=phone(), idempotency_key=f"id-{sid}"))
    with pytest.raises(errors.InvalidInput) as both:
        await maybe(vb.book_appointment(sid))
    assert both.value.code == "invalid_input"
    with pytest.raises(errors.InPast):
        await maybe(vb.book_appointment(sid, start="2020-01-06T10:00:00+00:00"))
    slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
    with pytest.raises(errors.NotOnGrid):
        await maybe(vb.book_appointment(sid, start=slot.start.replace(minute=7)))
    booked = await maybe(vb.book_appointment(sid, slot_id=slot.slot_id))
    await maybe(vb.cancel_appointment(sid, appointment_id=booked.appointment.id))
    with pytest.raises(errors.AlreadyCancelled):
        await maybe(vb.cancel_appointment(sid, appointment_id=booked.appointment.id))
    with pytest.raises(errors.LiveKitNotConfigured) as no_livekit:
        await maybe(vb.livekit_token(sid, identity="caller"))
    assert isinstance(no_livekit.value, errors.ServiceUnavailable)
    assert no_livekit.value.attempts == 1  # configuration: never retried


async def test_retried_tool_call_with_the_same_key_books_once(vb: Any) -> None:
    sid = await identified(vb)
    slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
    first = await maybe(vb.book_appointment(sid, slot_id=slot.slot_id, idempotency_key="b-1"))
    again = await maybe(vb.book_appointment(sid, slot_id=slot.slot_id, idempotency_key="b-1"))
    assert again.appointment.id == first.appointment.id
    mine = await maybe(vb.retrieve_appointments(sid))
    assert [a.id for a in mine.appointments] == [first.appointment.id]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (409, {"error": {"code": "slot_taken", "message": "Taken."}}, errors.SlotTaken, None),
        (409, {"error": {"code": "session_ended", "message": "m"}}, errors.SessionEnded, None),
        (409, {"error": {"code": "brand_new", "message": "m"}}, errors.Conflict, "brand_new"),
        (422, {"error": {"code": "too_far", "message": "m"}}, errors.TooFar, None),
        (422, {"error": {"code": "outside_hours", "message": "m"}}, errors.OutsideHours, None),
        (413, {"error": {"code": "payload_too_large", "message": "m"}}, errors.InvalidInput, None),
        (403, {"error": {"code": "forbidden", "message": "m"}}, errors.Forbidden, None),
        (403, {"error": {"code": "verification_required"}}, errors.VerificationRequired, None),
        (403, {"error": {"code": "brand_new", "message": "m"}}, errors.Forbidden, "brand_new"),
        (422, {"error": {"code": "wrong_code", "attempts_left": 2}}, errors.WrongCode, None),
        (429, {"error": {"code": "too_many_codes"}}, errors.TooManyCodes, None),
        (503, {"error": {"code": "verification_unavailable"}}, errors.VerificationUnavailable, None),  # noqa: E501
        (503, {"error": {"code": "store_unavailable"}}, errors.StoreUnavailable, None),
        (502, "<html>bad gateway</html>", errors.ServiceUnavailable, "service_unavailable"),
        (500, None, errors.ServerError, "internal_error"),
        (418, None, errors.VoicebookError, "http_418"),
    ],
)  # fmt: skip
def test_error_bodies_map_to_families(
    status: int, body: Any, cls: type[errors.VoicebookError], code: str | None
) -> None:
    error = error_from_body(status, body, request_id="rid-1")
    assert type(error) is cls
    assert error.code == (code or body["error"]["code"])
    assert (error.status, error.request_id) == (status, "rid-1")
    assert error.message


def test_slot_taken_reads_alternatives_and_rate_limited_its_wait() -> None:
    slot = {
        "slot_id": "slot_1",
        "start": "2027-03-02T09:00:00-05:00",
        "end": "2027-03-02T09:30:00-05:00",
        "label": "Tuesday, March 2 at 9:00 AM",
    }
    body = {"error": {"code": "slot_taken", "message": "m", "alternatives": [slot, {"x": 1}]}}
    taken = error_from_body(409, body)
    assert isinstance(taken, errors.SlotTaken)
    assert [s.slot_id for s in taken.alternatives] == ["slot_1"]  # the unreadable one is skipped
    limited = error_from_body(
        429, {"error": {"code": "rate_limited", "message": "m"}}, retry_after=7
    )
    assert isinstance(limited, errors.RateLimited)
    assert limited.retry_after == 7


def test_an_answer_that_is_not_the_model_is_unexpected_response(server: Server) -> None:
    with Client(server.url, API_KEY) as client:
        # /metrics answers 200 with Prometheus text, not the JSON the call expects.
        not_json = Call("GET", "/metrics", models.Health.model_validate, idempotent=True)
        with pytest.raises(errors.UnexpectedResponse) as unreadable:
            client._send(not_json)
        assert unreadable.value.status == 200
        assert server.url in unreadable.value.message


# --- the event stream -----------------------------------------------------------------------------


async def test_stream_yields_the_sessions_events_in_order_and_ends(vb: Any) -> None:
    sid = (await maybe(vb.start_session())).session_id
    seen: list[models.Event] = []
    consumer = asyncio.create_task(collect(vb.stream_events(sid), seen))
    for _ in range(100):  # the socket is open and replayed the first event: now go live
        if seen:
            break
        await asyncio.sleep(0.05)
    assert seen and seen[0].type == "status"
    await maybe(vb.identify_user(sid, phone=phone()))
    slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
    await maybe(vb.book_appointment(sid, slot_id=slot.slot_id))
    await maybe(vb.report(sid, transcript=[{"role": "user", "text": "thanks"}]))
    await maybe(vb.end_conversation(sid, recap="Booked."))
    await asyncio.wait_for(consumer, 30)

    log = await maybe(vb.session_events(sid))
    assert [e.model_dump() for e in seen] == [e.model_dump() for e in log]
    assert [e.id for e in seen] == sorted({e.id for e in seen})
    assert seen[-1].type == "session_closed"
    assert [e.type for e in seen[-3:]] == ["status", "summary", "session_closed"]
    assert "transcript" in {e.type for e in seen}


async def test_stream_resumes_after_a_break_without_duplicates(vb: Any) -> None:
    sid = await identified(vb)
    for _ in range(3):
        await maybe(vb.fetch_slots(sid, limit=1))
    stream = vb.stream_events(sid)
    head = await take(stream, 3)
    assert stream.last_id == head[-1].id == 3
    await maybe(vb.end_conversation(sid))
    resumed = vb.stream_events(sid, after=stream.last_id)
    tail: list[models.Event] = []
    await asyncio.wait_for(collect(resumed, tail), 30)
    ids = [e.id for e in head + tail]
    assert ids == [e.id for e in await maybe(vb.session_events(sid))]
    assert len(ids) == len(set(ids))
    assert tail[-1].type == "session_closed"
    assert resumed.reconnects == 0


async def test_stream_of_an_unknown_session_raises_not_found(vb: Any) -> None:
    stream = vb.stream_events("no-such-session-0000")
    with pytest.raises(errors.NotFound):
        await collect(stream, [])


def test_stream_rejects_a_negative_after(server: Server) -> None:
    with (
        Client(server.url, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(ValueError, match="after"),
    ):
        client.stream_events("abc", after=-1)
