"""Services, staff and rooms (the business file), through the service on SQLite and Postgres.

The clinic: Dr. Lee (cuts, colours, treatments; Mon–Fri 9–17) and Dr. Patel (cuts and
treatments; Mon–Fri 12:20–18, away on Wednesday 3 March), one treatment room (Mon–Fri 9–14).
A treatment needs a doctor and the room. Every booking holds its resources for its blocked span
(start − buffer before, end + buffer after), and the database refuses overlaps of those spans.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpers import key
from voicebook.models import CallerRequest
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.business import Business, Resource, Service
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.hours import parse_hours
from voicebook.scheduling.service import SchedulingService

NY = ZoneInfo("America/New_York")
CUT = Service("cut", "Cut", 30, buffer_after=10, price=40)
COLOUR = Service("colour", "Colour", 90, buffer_before=10, buffer_after=15, price=120)
TREATMENT = Service("treatment", "Treatment", 60)
LEE = Resource(
    "lee", "Dr. Lee", "staff", frozenset({"cut", "colour", "treatment"}),
    parse_hours("mon-fri 09:00-17:00, sun 00:00-24:00"),
)  # fmt: skip
PATEL = Resource(
    "patel", "Dr. Patel", "staff", frozenset({"cut", "treatment"}),
    parse_hours("mon-fri 12:20-18:00"), frozenset({datetime(2027, 3, 3).date()}),
)  # fmt: skip
ROOM = Resource(
    "room-1", "Treatment room", "room", frozenset({"treatment"}), parse_hours("mon-fri 09:00-14:00")
)
TUESDAY = "2027-03-02"
_numbers = itertools.count(100)


def local(day: str, hhmm: str) -> str:
    return f"{day}T{hhmm}:00-05:00"


@pytest.fixture
def clinic(rules: AvailabilityRules) -> Business:
    return Business(
        rules=rules, services=(CUT, COLOUR, TREATMENT), resources=(LEE, PATEL, ROOM),
        name="Lee Family Clinic",
    )  # fmt: skip


@pytest.fixture
def service(store: Any, clinic: Business, clock: Any) -> SchedulingService:
    return SchedulingService(store, clinic.rules, clock=clock, business=clinic)


async def caller(service: SchedulingService) -> str:
    """A new trusted caller with a number of their own."""
    phone = f"+1415555{next(_numbers):04d}"
    return (await service.start_session(CallerRequest(phone=phone))).id


async def call(shop: SchedulingService, tool: str, session: str, /, **args: Any) -> Any:
    """Run a tool with a fresh key; its response (`service` is a tool argument here)."""
    return (await shop.run_tool(tool, {"session_id": session, **args}, key())).response


async def refused(shop: SchedulingService, tool: str, session: str, /, **args: Any) -> Any:
    with pytest.raises(DomainError) as caught:
        await shop.run_tool(tool, {"session_id": session, **args}, key())
    return caught.value


def wall(slots: list[Any]) -> list[tuple[str, str | None]]:
    return [(s.start.astimezone(NY).strftime("%H:%M"), s.resource) for s in slots]


async def test_slots_follow_the_service_and_the_staff(service: SchedulingService) -> None:
    session = await caller(service)
    cuts = await call(service, "fetch_slots", session, service="cut", date=TUESDAY, limit=40)
    # Lee alone until 12:20 every 40 minutes (30 + 10 buffer); from then either of them.
    assert wall(cuts.slots)[:3] == [("09:00", "lee"), ("09:40", "lee"), ("10:20", "lee")]
    assert all(s.end - s.start == timedelta(minutes=30) for s in cuts.slots)
    assert cuts.slots[0].label == "Tuesday, March 2 at 9:00 AM with Dr. Lee"
    assert cuts.slots[0].service == "cut" and cuts.slots[0].resource_name == "Dr. Lee"
    both = {s.resource for s in cuts.slots if s.start.astimezone(NY).hour >= 13}
    assert both == {"lee", "patel"}  # one offer per start, shared out by the least-booked rule

    colours = await call(service, "fetch_slots", session, service="Colour", date=TUESDAY)
    # The buffer before: the first colour starts 10 minutes after opening, every 115 minutes.
    assert wall(colours.slots)[:2] == [("09:10", "lee"), ("11:05", "lee")]
    with_patel = await call(
        service, "fetch_slots", session, service="cut", staff="Patel", date=TUESDAY, limit=2
    )
    assert wall(with_patel.slots) == [("12:20", "patel"), ("13:00", "patel")]

    error = await refused(service, "fetch_slots", session, service="colour", staff="patel")
    assert error.code == "invalid_input" and "Dr. Patel doesn't do Colour" in error.message
    error = await refused(service, "fetch_slots", session, service="massage")
    assert error.code == "invalid_input" and "Cut" in error.message


async def test_anyone_goes_to_the_least_booked_that_day(service: SchedulingService) -> None:
    first = await caller(service)
    slot = await call(
        service, "fetch_slots", first, service="cut", staff="lee", date=TUESDAY, limit=1
    )
    await call(service, "book_appointment", first, slot_id=slot.slots[0].slot_id)  # Lee: 1
    second = await caller(service)
    booked = await call(
        service, "book_appointment", second, start=local(TUESDAY, "12:20"), service="cut"
    )
    assert booked.appointment.resource == "patel"  # fewer bookings that day
    third = await caller(service)
    again = await call(
        service, "book_appointment", third, start=local(TUESDAY, "12:20"), service="cut"
    )
    assert again.appointment.resource == "lee"  # Patel is taken at 12:20
    listed = await call(service, "retrieve_appointments", third)
    assert [(a.service_name, a.resource_name) for a in listed.appointments] == [("Cut", "Dr. Lee")]
    assert listed.appointments[0].label == "Tuesday, March 2 at 12:20 PM with Dr. Lee"


async def test_a_staff_members_closed_date(service: SchedulingService) -> None:
    session = await caller(service)
    wednesday = await call(
        service, "fetch_slots", session, service="cut", date="2027-03-03", limit=40
    )
    assert {s.resource for s in wednesday.slots} == {"lee"}
    error = await refused(
        service, "fetch_slots", session, service="cut", staff="patel", date="2027-03-03"
    )
    assert error.code == "closed"


async def test_a_treatment_needs_a_doctor_and_the_room(service: SchedulingService) -> None:
    session = await caller(service)
    slots = await call(service, "fetch_slots", session, service="treatment", date=TUESDAY, limit=20)
    # Only while the room is open (9–14).
    assert {s.start.astimezone(NY).hour for s in slots.slots} <= {9, 10, 11, 12, 13}
    assert all(s.end.astimezone(NY).hour * 60 + s.end.minute <= 14 * 60 for s in slots.slots)
    booked = await call(
        service, "book_appointment", session, start=local(TUESDAY, "12:00"), service="treatment"
    )
    assert booked.appointment.room == "room-1"
    # Patel is free at 12:20, but the room is not (Lee's treatment has it until 13:00).
    other = await caller(service)
    taken = await refused(
        service, "book_appointment", other, start=local(TUESDAY, "12:20"),
        service="treatment", staff="patel",
    )  # fmt: skip
    assert taken.code == "slot_taken"
    # A cut with Patel at 12:20 needs no room.
    cut = await call(
        service, "book_appointment", other, start=local(TUESDAY, "12:20"), service="cut",
        staff="patel",
    )  # fmt: skip
    assert cut.appointment.room is None
    # Cancelling the treatment frees the room.
    await call(service, "cancel_appointment", session, appointment_id=booked.appointment.id)
    third = await caller(service)
    again = await call(
        service, "book_appointment", third, start=local(TUESDAY, "12:00"), service="treatment",
        staff="lee",
    )  # fmt: skip
    assert again.appointment.room == "room-1"


async def test_the_blocked_span_guards_the_buffers(service: SchedulingService) -> None:
    session = await caller(service)
    await call(
        service,
        "book_appointment",
        session,
        start=local(TUESDAY, "10:20"),
        service="cut",
        staff="lee",
    )  # fmt: skip  (blocked 10:20–11:00)
    other = await caller(service)
    # A colour at 11:05 blocks 10:55–12:50: its buffer before overlaps the cut's buffer after.
    error = await refused(
        service, "book_appointment", other, start=local(TUESDAY, "11:05"), service="colour",
        staff="lee",
    )  # fmt: skip
    assert error.code == "slot_taken"
    assert error.extra["alternatives"]


async def test_the_same_caller_booking_the_slot_they_hold_gets_it_back(
    service: SchedulingService,
) -> None:
    session = await caller(service)
    slot = (await call(service, "fetch_slots", session, service="cut", limit=1)).slots[0]
    first = await call(service, "book_appointment", session, slot_id=slot.slot_id)
    again = await call(service, "book_appointment", session, slot_id=slot.slot_id)
    assert again.appointment.id == first.appointment.id
    listed = await call(service, "retrieve_appointments", session)
    assert len(listed.appointments) == 1


async def test_modify_can_change_the_staff_member_or_the_time(service: SchedulingService) -> None:
    session = await caller(service)
    booked = await call(
        service, "book_appointment", session, start=local(TUESDAY, "13:00"), service="cut",
        staff="lee",
    )  # fmt: skip
    moved = await call(
        service, "modify_appointment", session, appointment_id=booked.appointment.id,
        new_start=local(TUESDAY, "13:00"), staff="patel",
    )  # fmt: skip
    assert (moved.appointment.resource, moved.previous.resource) == ("patel", "lee")
    # Into a time Patel already has: refused, and the appointment is untouched.
    other = await caller(service)
    await call(
        service, "book_appointment", other, start=local(TUESDAY, "14:20"), service="cut",
        staff="patel",
    )  # fmt: skip
    error = await refused(
        service, "modify_appointment", session, appointment_id=moved.appointment.id,
        new_start=local(TUESDAY, "14:20"), staff="patel",
    )  # fmt: skip
    assert error.code == "slot_taken"
    listed = await call(service, "retrieve_appointments", session)
    assert [(a.id, a.resource) for a in listed.appointments] == [(moved.appointment.id, "patel")]


async def test_dst_days_per_resource(service: SchedulingService, clock: Any) -> None:
    clock.now = datetime(2027, 3, 10, 12, 0, tzinfo=timezone.utc)
    session = await caller(service)
    spring = await call(
        service, "fetch_slots", session, service="cut", date="2027-03-14", limit=200
    )
    # Lee works all Sunday: 23 hours that day, a cut every 40 minutes in absolute time (the
    # last one must end by midnight), none at 02:xx.
    starts = [s.start.astimezone(NY) for s in spring.slots]
    assert {s.resource for s in spring.slots} == {"lee"}
    assert all(t.hour != 2 for t in starts)
    assert len(starts) == len(set(starts)) == (23 * 60 - 30) // 40 + 1
    instants = [s.start.astimezone(timezone.utc) for s in spring.slots]  # absolute time
    assert all(b - a == timedelta(minutes=40) for a, b in itertools.pairwise(instants))


# --- concurrency: the database keeps blocked spans apart ------------------------------------------


async def test_two_ranges_that_meet_plus_a_buffer_never_both_win(
    store: Any, rules: AvailabilityRules, clock: Any
) -> None:
    """mon 09:00-12:30 12:30-17:00 with a 15-minute buffer: 12:00 (blocked until 12:45) and
    12:30 are both on the grid, and must never both be booked."""
    from dataclasses import replace

    meeting = replace(rules, weekly=parse_hours("mon-fri 09:00-12:30 12:30-17:00"))
    person = Resource("only", "Sam", "staff", frozenset({"cut"}), meeting.weekly)
    business = Business(
        rules=meeting, services=(Service("cut", "Cut", 30, buffer_after=15),), resources=(person,)
    )
    shop = SchedulingService(store, meeting, clock=clock, business=business)
    for day in ("2027-03-02", "2027-03-03", "2027-03-04", "2027-03-05", "2027-03-08"):
        a, b = await caller(shop), await caller(shop)
        outcomes = await asyncio.gather(
            shop.run_tool("book_appointment", {"session_id": a, "start": local(day, "12:00")}),
            shop.run_tool("book_appointment", {"session_id": b, "start": local(day, "12:30")}),
            return_exceptions=True,
        )
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, DomainError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].code == "slot_taken"


async def test_fifty_callers_race_for_the_last_free_staff_member(
    service: SchedulingService,
) -> None:
    holder = await caller(service)
    await call(
        service, "book_appointment", holder, start=local(TUESDAY, "13:00"), service="cut",
        staff="lee",
    )  # fmt: skip
    sessions = [await caller(service) for _ in range(50)]
    outcomes = await asyncio.gather(
        *(
            service.run_tool(
                "book_appointment",
                {"session_id": s, "start": local(TUESDAY, "13:00"), "service": "cut"},
                key(),
            )
            for s in sessions
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1 and won[0].response.appointment.resource == "patel"
    assert all(
        isinstance(o, DomainError) and o.code == "slot_taken" for o in outcomes if o not in won
    )


async def test_book_versus_modify_into_a_neighbouring_span(
    service: SchedulingService, store: Any
) -> None:
    mover = await caller(service)
    booked = await call(
        service, "book_appointment", mover, start=local(TUESDAY, "15:00"), service="cut",
        staff="lee",
    )  # fmt: skip
    for round_ in range(5):
        day = ["2027-03-02", "2027-03-04", "2027-03-05", "2027-03-08", "2027-03-09"][round_]
        booker = await caller(service)
        # The cut moved to 11:00 blocks 11:00–11:40; a colour at 11:05 would block 10:55–12:50.
        outcomes = await asyncio.gather(
            service.run_tool(
                "modify_appointment",
                {"session_id": mover, "appointment_id": booked.appointment.id,
                 "new_start": local(day, "11:00"), "staff": "lee"},
                key(),
            ),
            service.run_tool(
                "book_appointment",
                {"session_id": booker, "start": local(day, "11:05"), "service": "colour",
                 "staff": "lee"},
                key(),
            ),
            return_exceptions=True,
        )  # fmt: skip
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(won) == 1, outcomes
        assert all(o.code == "slot_taken" for o in outcomes if isinstance(o, DomainError))
        moved = outcomes[0]
        if not isinstance(moved, BaseException):
            booked = moved.response
    await assert_no_overlapping_holds(store)


async def assert_no_overlapping_holds(store: Any) -> None:
    async with store.transaction(write=False) as tx:
        for resource in ("lee", "patel", "room-1"):
            window = (
                datetime(2027, 1, 1, tzinfo=timezone.utc),
                datetime(2028, 1, 1, tzinfo=timezone.utc),
            )
            from voicebook.scheduling.availability import Interval

            spans = sorted(await tx.busy_between(resource, Interval(*window)))
            for a, b in itertools.pairwise(spans):
                assert a.end <= b.start, (resource, a, b)


# --- the business file --------------------------------------------------------------------------

CLINIC_FILE = """\
timezone = "America/Chicago"
min_notice_minutes = 30

[business]
name = "Lee Family Clinic"
phone = "+1 415 555 0100"

[[services]]
id = "cut"
name = "Cut"
minutes = 30
buffer_after = 10

[[staff]]
id = "lee"
name = "Dr. Lee"
services = ["cut"]
hours = "mon-fri 09:00-17:00"
"""


def test_the_business_file_is_read_and_the_environment_overrides_it(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicebook.config import load_settings

    (isolated_env / "voicebook.toml").write_text(CLINIC_FILE)
    settings = load_settings()
    assert settings.timezone == "America/Chicago" and settings.min_notice_minutes == 30
    business = settings.business_model
    assert business.name == "Lee Family Clinic" and [s.id for s in business.services] == ["cut"]
    monkeypatch.setenv("VOICEBOOK_MIN_NOTICE_MINUTES", "90")
    assert load_settings().min_notice_minutes == 90
    # Named by a setting instead, anywhere.
    elsewhere = isolated_env / "other.toml"
    elsewhere.write_text(CLINIC_FILE.replace("Lee Family", "Other"))
    monkeypatch.setenv("VOICEBOOK_BUSINESS_FILE", str(elsewhere))
    assert load_settings().business_model.name == "Other Clinic"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("minutes = 30", "minutes = 2"), "voicebook.toml:11: services.0.minutes"),
        (('services = ["cut"]', 'services = ["cut", "perm"]'), "unknown services: perm"),
        (
            ('hours = "mon-fri 09:00-17:00"', 'hours = "fry 09:00-17:00"'),
            "voicebook.toml:18: staff.0.hours",
        ),
        (('name = "Cut"', 'name = "Cut"\ncolour = true'), "voicebook.toml:"),
        (("[business]", "[business"), "not valid TOML"),
    ],
)
def test_a_bad_business_file_names_the_line_and_the_field(
    isolated_env: Path, change: tuple[str, str], says: str
) -> None:
    from voicebook.config import ConfigError, load_settings

    (isolated_env / "voicebook.toml").write_text(CLINIC_FILE.replace(*change))
    with pytest.raises(ConfigError) as bad:
        load_settings()
    assert says in str(bad.value)
