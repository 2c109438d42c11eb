"""A clinic open around the clock (two doctors, a treatment room, a service with a buffer), served
by a real `voicebook serve` with a console password, for the Calendar tab's HTTP and browser
tests; bookings made through the SDK as callers make them, and one in the past written straight
to the store (no public surface can book the past)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from backend_servers import database_on
from browser_support import PASSWORD
from servers import Server, running_server
from voicebook.config import Settings
from voicebook.scheduling.availability import Interval
from voicebook.scheduling.ids import new_appointment_id, new_user_id
from voicebook.sdk import Client
from voicebook.server.console.auth import CSRF_HEADER
from voicebook.store import create_store
from voicebook.store.base import AppointmentRecord

API_KEY = "calendar-service-key"
ZONE = ZoneInfo("America/New_York")
CLINIC = """\
timezone = "America/New_York"
min_notice_minutes = 0
horizon_days = 400

[business]
name = "Calendar Clinic"

[[services]]
id = "cut"
name = "Cut"
minutes = 30

[[services]]
id = "treatment"
name = "Treatment"
minutes = 60
buffer_after = 30

[[staff]]
id = "lee"
name = "Dr. Lee"
services = ["cut", "treatment"]
hours = "{hours}"

[[staff]]
id = "patel"
name = "Dr. Patel"
services = ["cut", "treatment"]
hours = "{hours}"

[[rooms]]
id = "room-1"
name = "Treatment room"
services = ["treatment"]
hours = "{hours}"
"""
_numbers = itertools.count(1000)


@dataclass
class Clinic:
    server: Server
    database_url: str

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.contextmanager
def clinic(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    hours: str = "mon-sun 00:00-24:00",
) -> Iterator[Clinic]:
    """The clinic's server on `backend`, everyone open `hours` (its database URL too, for
    `seed_past`)."""
    folder: Path = tmp_path_factory.mktemp(f"calendar-{backend}")
    (folder / "voicebook.toml").write_text(CLINIC.replace("{hours}", hours))
    env = {
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
        "VOICEBOOK_BUSINESS_FILE": str(folder / "voicebook.toml"),
        "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    }
    with (
        database_on(backend, request, folder) as url,
        running_server({**env, "VOICEBOOK_DATABASE_URL": url}, folder) as running,
    ):
        yield Clinic(running, url)


def operator(url: str) -> httpx.Client:
    """A client that loaded the console and signed in: its cookies, and the CSRF header on
    every request (as the page sends it)."""
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/")
    token = client.get("/console/api/me").json()["csrf_token"]
    client.headers[CSRF_HEADER] = token
    signed = client.post("/console/api/login", json={"password": PASSWORD})
    assert signed.status_code == 204, signed.text
    return client


def calendar(http: httpx.Client, **params: Any) -> dict[str, Any]:
    """The calendar API's answer for `params`, as the signed-in page `http` gets it."""
    answer = http.get("/console/api/calendar", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error of a refused request, which must have `status`, `code` and a sentence."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def at_once(*actions: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """The answers of `actions` sent together, each from its own thread, released at once."""
    gate = threading.Barrier(len(actions))

    def run(action: Callable[[], httpx.Response]) -> httpx.Response:
        gate.wait()
        return action()

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))


def local(day: date, hhmm: str) -> str:
    """An ISO time with the business zone's offset of that day and time."""
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).isoformat()


def ahead(days: int) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days)


def new_phone() -> str:
    return f"+1415556{next(_numbers):04d}"


def book(
    url: str,
    day: date,
    hhmm: str,
    *,
    staff: str | None = "lee",
    service: str | None = "cut",
    name: str = "Ada",
) -> tuple[str, str]:
    """(session id, appointment id) of a booking by a new trusted caller, whose session stays
    open."""
    with Client(url, API_KEY) as vb:
        session = vb.start_session(phone=new_phone(), name=name).session_id
        made = vb.book_appointment(session, start=local(day, hhmm), service=service, staff=staff)
    return session, made.appointment.id


def seed_past(database_url: str, *, hours_ago: float = 2, name: str = "Old") -> str:
    """A confirmed appointment that started `hours_ago` hours ago, written to the store."""

    async def write() -> str:
        store = create_store(Settings(database_url=database_url))
        await store.open()
        try:
            now = datetime.now(timezone.utc).replace(microsecond=0)
            start = now - timedelta(hours=hours_ago)
            record = AppointmentRecord(
                id=new_appointment_id(), user_id="", resource="patel", starts_at=start,
                ends_at=start + timedelta(minutes=30), status="confirmed", name=name,
                notes=None, session_id=None, created_at=now, updated_at=now, service="cut",
            )  # fmt: skip
            async with store.transaction() as tx:
                user, _ = await tx.upsert_user(new_phone(), name, now, new_id=new_user_id())
                record.user_id = user.id
                await tx.insert_appointment(record, Interval(record.starts_at, record.ends_at))
            return record.id
        finally:
            await store.close()

    return asyncio.run(write())


def seed_many(database_url: str, first_day: date, count: int) -> list[tuple[datetime, str]]:
    """`count` confirmed 10-minute appointments from midnight of `first_day` (business zone),
    one every 20 minutes on each of the two staff members' calendars, written to the store in
    one transaction; their (start, id), earliest first."""

    async def write() -> list[tuple[datetime, str]]:
        store = create_store(Settings(database_url=database_url))
        await store.open()
        try:
            now = datetime.now(timezone.utc).replace(microsecond=0)
            midnight = datetime(first_day.year, first_day.month, first_day.day, tzinfo=ZONE)
            made = []
            async with store.transaction() as tx:
                user, _ = await tx.upsert_user(new_phone(), "Many", now, new_id=new_user_id())
                for n in range(count):
                    start = (midnight + timedelta(minutes=20 * (n // 2))).astimezone(timezone.utc)
                    record = AppointmentRecord(
                        id=new_appointment_id(), user_id=user.id, resource=("lee", "patel")[n % 2],
                        starts_at=start, ends_at=start + timedelta(minutes=10), status="confirmed",
                        name="Many", notes=None, session_id=None, created_at=now, updated_at=now,
                        service="cut",
                    )  # fmt: skip
                    await tx.insert_appointment(record, Interval(record.starts_at, record.ends_at))
                    made.append((start, record.id))
            return sorted(made)
        finally:
            await store.close()

    return asyncio.run(write())


def next_dst_change(after: date) -> date:
    """The first local day from `after` on which the business zone's offset changes."""
    day = after
    while True:
        start = datetime(day.year, day.month, day.day, tzinfo=ZONE)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=ZONE)
        if start.utcoffset() != end.utcoffset():
            return day
        day = following


def next_fall_back(after: date) -> date:
    """The first local day from `after` on which the business zone's clocks go back (an hour of
    wall-clock times happens twice)."""
    day = next_dst_change(after)
    while datetime(day.year, day.month, day.day, tzinfo=ZONE).utcoffset() < (
        datetime(day.year, day.month, day.day, 23, tzinfo=ZONE).utcoffset()
    ):
        day = next_dst_change(day + timedelta(days=1))
    return day
