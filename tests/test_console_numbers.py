"""The console's Numbers over real HTTP, on SQLite and Postgres: calls, bookings, cancellations and
cost per local day of the business (a call just before and just after local midnight, on both DST
days), tool failures by code after real refused tool calls, zeros for empty days, `days` checked,
and nothing without a sign-in.

The server runs in this process (a real uvicorn on a loopback port) so the test can set its
clock: each session, booking and report is made through the HTTP API at the instant under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import uvicorn

from backend_servers import BACKENDS, database_on
from conftest import Clock
from voicebook.config import Settings
from voicebook.server.app import create_app

PASSWORD = "numbers-console-password"
SERVICE_KEY = "numbers-service-key"
SERVICE = {"Authorization": f"Bearer {SERVICE_KEY}"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with database_on(request.param, request, tmp_path_factory.mktemp("numbers")) as url:
        yield url


class _QuietServer(uvicorn.Server):
    """Leaves the signals to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(database: str, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a free loopback port with the service on `clock`; yields an HTTP client of
    it (not signed in)."""
    settings = Settings(
        database_url=database,
        console_password=PASSWORD,
        api_key=SERVICE_KEY,
        timezone="America/New_York",
        hours="mon-sun 09:00-17:00",
        session_idle_minutes=10**7,  # no session ends by itself while the clock jumps
        price_llm_input_per_1m=0,
        price_llm_output_per_1m=0,
        price_stt_per_minute=1.0,  # a call's cost is its minutes of speech
        price_tts_per_1k_chars=0,
        price_avatar_per_minute=0,
        rate_limit_per_address="100000/minute",
        rate_limit_per_session="100000/minute",
    )
    app = create_app(settings)
    app.state.ctx.service.clock = clock
    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server stopped during startup"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def sign_in(client: httpx.AsyncClient) -> None:
    token = (await client.get("/console/api/me")).json()["csrf_token"]
    answer = await client.post(
        "/console/api/login", json={"password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 204, answer.text


async def start(client: httpx.AsyncClient) -> str:
    answer = await client.post("/session/start")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["session_id"])


async def tool(
    client: httpx.AsyncClient, name: str, session_id: str, key: str | None = None, /, **args: Any
) -> httpx.Response:
    headers = {**SERVICE, "Idempotency-Key": key or secrets.token_hex(8)}
    return await client.post(
        f"/tools/{name}", json={"session_id": session_id, **args}, headers=headers
    )


async def ok(client: httpx.AsyncClient, name: str, session_id: str, /, **args: Any) -> Any:
    answer = await tool(client, name, session_id, **args)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def book(client: httpx.AsyncClient, session_id: str, phone: str) -> str:
    """Identify the caller and book the first free slot; the appointment's id."""
    await ok(client, "identify_user", session_id, phone=phone, name="Numbers Test")
    slot = (await ok(client, "fetch_slots", session_id))["slots"][0]
    booked = await ok(client, "book_appointment", session_id, slot_id=slot["slot_id"])
    return str(booked["appointment"]["id"])


async def hang_up(client: httpx.AsyncClient, session_id: str, speech_seconds: float) -> None:
    """The agent's last report: this much speech (priced at $1 a minute), and the caller left."""
    answer = await client.post(
        "/agent/report",
        json={"session_id": session_id, "usage": {"stt_seconds": speech_seconds}, "hangup": True},
        headers=SERVICE,
    )
    assert answer.status_code == 200, answer.text


async def numbers(client: httpx.AsyncClient, days: int) -> Any:
    answer = await client.get("/console/api/numbers", params={"days": days})
    assert answer.status_code == 200, answer.text
    return answer.json()


def column(body: Any, name: str) -> list[Any]:
    return [day[name] for day in body["per_day"]]


async def test_each_call_counts_on_its_local_day_across_midnight_and_dst(database: str) -> None:
    # New York falls back on Sunday 2026-11-01: that day lasts 25 hours (04:00Z to 05:00Z).
    clock = Clock(utc("2026-11-01T03:59:00"))  # Saturday Oct 31, 23:59 EDT
    async with serving(database, clock) as client:
        late = await start(client)
        appointment = await book(client, late, "+12125550101")

        clock.now = utc("2026-11-01T04:01:00")  # Sunday Nov 1, 00:01 EDT
        await ok(client, "cancel_appointment", late, appointment_id=appointment)
        early = await start(client)
        await hang_up(client, early, 120)  # $2

        clock.now = utc("2026-11-02T04:30:00")  # still Sunday Nov 1: 23:30 EST
        last = await start(client)
        moved = await book(client, last, "+12125550102")  # left open: no cost yet
        later = (await ok(client, "fetch_slots", last))["slots"][1]
        await ok(
            client, "modify_appointment", last, appointment_id=moved, new_slot_id=later["slot_id"]
        )

        clock.now = utc("2026-11-02T05:30:00")  # Monday Nov 2, 00:30 EST
        monday = await start(client)
        await hang_up(client, monday, 60)  # $1
        await hang_up(client, late, 30)  # $0.50, on the day the call started

        clock.now = utc("2026-11-03T17:00:00")  # Tuesday Nov 3, noon
        await sign_in(client)
        body = await numbers(client, 5)

        assert body["timezone"] == "America/New_York"
        assert column(body, "date") == [
            "2026-10-30",
            "2026-10-31",
            "2026-11-01",
            "2026-11-02",
            "2026-11-03",
        ]
        assert column(body, "calls") == [0, 1, 2, 1, 0]
        assert column(body, "bookings") == [0, 1, 1, 0, 0]
        assert column(body, "moves") == [0, 0, 1, 0, 0]  # a move is not a new booking
        assert column(body, "cancellations") == [0, 0, 1, 0, 0]
        assert column(body, "priced_calls") == [0, 1, 1, 1, 0]
        assert column(body, "cost") == [0, 0.5, 2.0, 1.0, 0]
        assert column(body, "cost_per_call") == [None, 0.5, 2.0, 1.0, None]
        totals = body["totals"]
        assert (totals["calls"], totals["bookings"], totals["cancellations"]) == (4, 2, 1)
        assert (totals["cost"], totals["priced_calls"]) == (3.5, 3)
        assert totals["cost_per_call"] == pytest.approx(3.5 / 3, abs=1e-4)
        dearest = body["costliest"]
        assert [c["session_id"] for c in dearest] == [early, monday, late]
        assert [c["cost"] for c in dearest] == [2.0, 1.0, 0.5]
        assert dearest[2]["caller"].endswith("0101") and "+1212" not in dearest[2]["caller"]

        # New York springs forward on Sunday 2027-03-14: that day lasts 23 hours.
        clock.now = utc("2027-03-15T03:30:00")  # Sunday Mar 14, 23:30 EDT
        await start(client)
        clock.now = utc("2027-03-15T04:30:00")  # Monday Mar 15, 00:30 EDT
        await start(client)
        clock.now = utc("2027-03-15T16:00:00")
        spring = await numbers(client, 2)
        assert column(spring, "date") == ["2027-03-14", "2027-03-15"]
        assert column(spring, "calls") == [1, 1]


async def test_failures_are_counted_by_code_after_real_refused_calls(database: str) -> None:
    clock = Clock(utc("2026-12-01T15:00:00"))
    async with serving(database, clock) as client:
        session = await start(client)
        tomorrow = "2026-12-02T15:00:00Z"
        for key in ("first", "second"):
            refused = await tool(client, "book_appointment", session, key, start=tomorrow)
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "not_identified"
        again = await tool(client, "book_appointment", session, "second", start=tomorrow)
        assert again.status_code == 409  # a retry answers from its key: not a new failure
        wrong = await tool(client, "identify_user", session, phone="12")
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_phone"
        await ok(client, "fetch_slots", session)  # a success is no failure

        clock.advance(days=1)
        await sign_in(client)
        body = await numbers(client, 7)
        assert body["failures"] == [
            {
                "code": "not_identified",
                "count": 2,
                "tools": [{"name": "book_appointment", "count": 2}],
            },
            {"code": "invalid_phone", "count": 1, "tools": [{"name": "identify_user", "count": 1}]},
        ]
        assert body["totals"]["failures"] == 3
        assert (await numbers(client, 1))["failures"] == []  # yesterday's are outside today


async def test_empty_days_are_zeros_and_days_is_checked(database: str) -> None:
    clock = Clock(utc("2026-12-01T15:00:00"))
    async with serving(database, clock) as client:
        refused = await client.get("/console/api/numbers")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "sign_in_required"

        await sign_in(client)
        body = await numbers(client, 90)
        assert len(body["per_day"]) == 90
        dates = [date.fromisoformat(d) for d in column(body, "date")]
        assert dates[-1] == date(2026, 12, 1) and dates[0] == date(2026, 9, 3)
        assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(dates))
        for name in ("calls", "bookings", "moves", "cancellations", "priced_calls", "cost"):
            assert set(column(body, name)) == {0}, name
        assert set(column(body, "cost_per_call")) == {None}
        assert body["failures"] == [] and body["costliest"] == []
        assert body["totals"]["cost_per_call"] is None
        assert len((await client.get("/console/api/numbers")).json()["per_day"]) == 14

        for days in ("0", "91", "-3", "1.5", "seven", "", "٣", "9" * 5000):
            answer = await client.get("/console/api/numbers", params={"days": days})
            assert answer.status_code == 422, (days, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["field"]) == ("invalid_input", "days")
            assert error["message"].endswith(".") and len(error["message"].split()) > 3
