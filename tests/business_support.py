"""A clinic with two doctors and a treatment room, served by a real `voicebook serve` from its
business file, and a day of bookings made through the SDK as callers make them: what the tests of
the business's read API and of `voicebook appointments` look at."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backend_servers import server_on
from servers import Server
from voicebook.sdk import Client

API_KEY = "business-key"
ZONE = ZoneInfo("America/New_York")
CLINIC = """\
timezone = "America/New_York"
min_notice_minutes = 0
horizon_days = 30

[business]
name = "Lee Family Clinic"

[[services]]
id = "cut"
name = "Cut"
minutes = 30

[[services]]
id = "treatment"
name = "Treatment"
minutes = 60

[[staff]]
id = "lee"
name = "Dr. Lee"
services = ["cut", "treatment"]
hours = "mon-sun 08:00-18:00"

[[staff]]
id = "patel"
name = "Dr. Patel"
services = ["cut", "treatment"]
hours = "mon-sun 08:00-18:00"

[[rooms]]
id = "room-1"
name = "Treatment room"
services = ["treatment"]
hours = "mon-sun 08:00-18:00"
"""
_numbers = itertools.count(7000)


@dataclass
class Day:
    """The seeded day: the bookings (id → (staff, local HH:MM, status)) and the full phones."""

    date: date
    booked: dict[str, tuple[str, str, str]]
    phones: list[str]


def seeded_day() -> date:
    """A day ahead in the business zone, within the horizon, whatever today is."""
    return datetime.now(ZONE).date() + timedelta(days=3)


def local(day: date, hhmm: str) -> str:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).isoformat()


def seed(url: str) -> Day:
    """Seven bookings on the day (one cancelled, one treatment that holds the room) and one on
    the next day, each by a trusted caller of their own."""
    day = seeded_day()
    plan = [
        ("lee", "cut", "09:00", "Ada", "first visit"),
        ("lee", "cut", "10:00", "Ben", None),
        ("lee", "cut", "11:00", "Cy", None),
        ("patel", "cut", "09:00", "Dee", None),
        ("patel", "treatment", "13:00", "Eve", "knee"),
        ("lee", "cut", "15:00", "Flo", None),
        ("patel", "cut", "15:00", "Gus", None),
    ]
    booked: dict[str, tuple[str, str, str]] = {}
    phones: list[str] = []
    with Client(url, API_KEY) as vb:
        for staff, service, hhmm, name, notes in plan:
            phone = f"+1415555{next(_numbers):04d}"
            phones.append(phone)
            session = vb.start_session(phone=phone, name=name).session_id
            made = vb.book_appointment(
                session, start=local(day, hhmm), service=service, staff=staff, notes=notes
            ).appointment
            status = "confirmed"
            if name == "Cy":
                vb.cancel_appointment(session, appointment_id=made.id, reason="ill")
                status = "cancelled"
            booked[made.id] = (staff, hhmm, status)
        phone = f"+1415555{next(_numbers):04d}"
        session = vb.start_session(phone=phone, name="Hal").session_id
        vb.book_appointment(
            session, start=local(day + timedelta(days=1), "09:00"), service="cut", staff="lee"
        )
    return Day(day, booked, phones)


@contextlib.contextmanager
def clinic_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`voicebook serve` on `backend`, reading the clinic from VOICEBOOK_BUSINESS_FILE."""
    folder: Path = tmp_path_factory.mktemp("clinic")
    (folder / "voicebook.toml").write_text(CLINIC)
    env = {
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_BUSINESS_FILE": str(folder / "voicebook.toml"),
        "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    }
    with server_on(backend, env, request, tmp_path_factory) as running:
        yield running
