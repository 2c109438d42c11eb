"""The tools through the service, on a real SQLite file and a real Postgres database."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpers import call, identified, key
from voicebook.models import CallerRequest
from voicebook.scheduling.availability import AvailabilityRules, Interval
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.hours import parse_hours
from voicebook.scheduling.service import SchedulingService
from voicebook.store.base import AppointmentRecord, OverlapError
from voicebook.store.postgres import PostgresStore

NEW_YORK_ZONE = ZoneInfo("America/New_York")
NINE_AM = "2027-03-02T09:00:00-05:00"  # Tuesday, inside opening hours, past minimum notice
TEN_AM = "2027-03-02T10:00:00-05:00"


async def refused(
    service: SchedulingService, tool: str, session_id: str, **args: Any
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await service.run_tool(tool, {"session_id": session_id, **args}, key())
    return caught.value


async def test_whole_flow_records_events_and_summary(service: SchedulingService) -> None:
    session = await service.start_session()
    who = await call(service, "identify_user", session.id, phone="(415) 555-0123", name="Ann Lee")
    assert who.user.phone_masked == "***0123"
    assert who.returning is False and who.upcoming == []

    slots = await call(service, "fetch_slots", session.id, date="2027-03-02", limit=3)
    assert [s.label for s in slots.slots] == [
        "Tuesday, March 2 at 9:00 AM",
        "Tuesday, March 2 at 9:30 AM",
        "Tuesday, March 2 at 10:00 AM",
    ]
    booked = await call(service, "book_appointment", session.id, slot_id=slots.slots[0].slot_id)
    assert booked.appointment.start == datetime(2027, 3, 2, 14, 0, tzinfo=timezone.utc)
    assert booked.appointment.name == "Ann Lee"

    moved = await call(
        service,
        "modify_appointment",
        session.id,
        appointment_id=booked.appointment.id,
        new_start=TEN_AM,
    )
    assert moved.previous.status == "rescheduled"
    assert moved.appointment.label == "Tuesday, March 2 at 10:00 AM"

    listed = await call(service, "retrieve_appointments", session.id)
    assert [a.id for a in listed.appointments] == [moved.appointment.id]

    ended = await call(service, "end_conversation", session.id, preferences=["mornings"])
    summary = ended.summary
    assert summary.contact_number == "***0123"
    assert [(b.date, b.time, b.status) for b in summary.booked_appointments] == [
        ("2027-03-02", "10:00", "confirmed"),  # the move's new time, not its old one
    ]
    assert [a.kind for a in summary.actions] == ["booked", "rescheduled"]
    assert summary.preferences == ["mornings", "Prefers Tuesdays"]  # not "mornings" twice
    assert "Ann Lee" in summary.summary and "***0123" in summary.summary

    events = await service.session_events(session.id)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    kinds = [(e.type, e.payload.get("name") or e.payload.get("state")) for e in events]
    assert kinds == [
        ("status", "connected"),
        ("tool_call", "identify_user"),
        ("tool_call", "fetch_slots"),
        ("tool_call", "book_appointment"),
        ("tool_call", "modify_appointment"),
        ("tool_call", "retrieve_appointments"),
        ("tool_call", "end_conversation"),
        ("status", "ended"),
        ("summary", None),
        ("session_closed", None),
    ]
    identify = events[1].payload
    assert identify["status"] == "completed"
    assert identify["args"]["phone"] == "***0123"
    # The number never appears unmasked in the event, however it is written: the digits of each
    # text (not of durations or other numbers) are searched for it.
    texts = re.findall(r'"((?:[^"\\]|\\.)*)"', json.dumps(identify))
    assert not any("4155550123" in re.sub(r"\D", "", text) for text in texts)
    assert events[8].payload["session_id"] == session.id


async def test_tools_need_identification_first(service: SchedulingService) -> None:
    session = await service.start_session()
    for name, args in [
        ("book_appointment", {"start": NINE_AM}),
        ("retrieve_appointments", {}),
        ("cancel_appointment", {"appointment_id": "apt_0000000000000000"}),
        ("modify_appointment", {"appointment_id": "apt_0", "new_start": TEN_AM}),
    ]:
        error = await refused(service, name, session.id, **args)
        assert error.code == "not_identified", name
        assert error.message == "I need your phone number before I can do that."
    events = await service.session_events(session.id)
    failed = [e.payload for e in events if e.type == "tool_call"]
    assert [f["status"] for f in failed] == ["failed"] * 4
    assert all(f["error"]["code"] == "not_identified" for f in failed)


async def test_another_callers_appointment_is_not_found(service: SchedulingService) -> None:
    alice = await identified(service, "415 555 0123")
    booked = await call(service, "book_appointment", alice, start=NINE_AM)
    bob = await identified(service, "212 555 0199")

    for name, args in [
        ("cancel_appointment", {"appointment_id": booked.appointment.id}),
        ("modify_appointment", {"appointment_id": booked.appointment.id, "new_start": TEN_AM}),
    ]:
        error = await refused(service, name, bob, **args)
        assert error.code == "not_found"
        assert error.message == "I couldn't find that appointment."
    unknown = await refused(
        service, "cancel_appointment", bob, appointment_id="apt_ffffffffffffffff"
    )
    assert unknown.message == "I couldn't find that appointment."  # same words: existence hidden
    by_start = await refused(service, "cancel_appointment", bob, start=NINE_AM)
    assert by_start.code == "not_found"
    assert (await call(service, "retrieve_appointments", bob)).appointments == []
    # Alice's appointment is untouched.
    mine = await call(service, "retrieve_appointments", alice)
    assert [(a.id, a.status) for a in mine.appointments] == [(booked.appointment.id, "confirmed")]


async def test_identity_is_bound_to_the_session(service: SchedulingService) -> None:
    """A session that re-identifies acts only as the newest caller, never as the earlier one."""
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone="415 555 0123")
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    await call(service, "identify_user", session, phone="212 555 0199")
    error = await refused(
        service, "cancel_appointment", session, appointment_id=booked.appointment.id
    )
    assert error.code == "verification_required"


async def test_returning_caller_sees_upcoming(service: SchedulingService) -> None:
    first = await identified(service, "415 555 0123", name="Ann")
    booked = await call(service, "book_appointment", first, start=NINE_AM)
    later = await service.start_session(CallerRequest(phone="+14155550123"))
    who = await call(
        service, "identify_user", later.id, phone="four one five five five five oh one two three"
    )
    assert who.returning is True
    assert who.user.name == "Ann"
    assert [a.id for a in who.upcoming] == [booked.appointment.id]


async def test_back_to_back_allowed_and_cancel_then_rebook(service: SchedulingService) -> None:
    a = await identified(service, "415 555 0123")
    b = await identified(service, "212 555 0199")
    first = await call(service, "book_appointment", a, start=NINE_AM)
    second = await call(service, "book_appointment", b, start="2027-03-02T09:30:00-05:00")
    assert first.appointment.end == second.appointment.start

    taken = await refused(service, "book_appointment", b, start=NINE_AM)
    assert taken.code == "slot_taken"
    await call(service, "cancel_appointment", a, appointment_id=first.appointment.id, reason="sick")
    rebooked = await call(service, "book_appointment", b, start=NINE_AM)
    assert rebooked.appointment.status == "confirmed"
    history = await call(service, "retrieve_appointments", a, include_cancelled=True)
    assert [(x.id, x.status) for x in history.appointments] == [(first.appointment.id, "cancelled")]


async def test_summary_lists_what_the_call_leaves_booked_each_with_a_name(
    service: SchedulingService,
) -> None:
    """The page lists `booked_appointments` as the caller's bookings, titled by `name`,
    whatever their status: a booking cancelled in the same call is not among them (it is in
    the actions), and a caller who gave no name still gets a title."""
    session = await identified(service, "415 555 0123")  # no name given
    kept = await call(service, "book_appointment", session, start=NINE_AM)
    dropped = await call(service, "book_appointment", session, start=TEN_AM)
    await call(service, "cancel_appointment", session, appointment_id=dropped.appointment.id)
    summary = (await call(service, "end_conversation", session)).summary
    assert [(b.id, b.status) for b in summary.booked_appointments] == [
        (kept.appointment.id, "confirmed")
    ]
    assert summary.booked_appointments[0].name.strip() != ""
    assert [(a.kind, a.appointment_id) for a in summary.actions] == [
        ("booked", kept.appointment.id),
        ("booked", dropped.appointment.id),
        ("cancelled", dropped.appointment.id),
    ]


async def test_slot_taken_offers_next_free_alternatives(service: SchedulingService) -> None:
    a = await identified(service, "415 555 0123")
    b = await identified(service, "212 555 0199")
    await call(service, "book_appointment", a, start=NINE_AM)
    await call(service, "book_appointment", a, start="2027-03-02T09:30:00-05:00")
    error = await refused(service, "book_appointment", b, start=NINE_AM)
    assert error.code == "slot_taken" and error.status == 409
    labels = [alt["label"] for alt in error.extra["alternatives"]]
    assert labels == [
        "Tuesday, March 2 at 10:00 AM",
        "Tuesday, March 2 at 10:30 AM",
        "Tuesday, March 2 at 11:00 AM",
    ]
    assert "10:00 AM" in error.message


async def test_reschedule_onto_taken_slot_leaves_original(
    service: SchedulingService, store: Any
) -> None:
    a = await identified(service, "415 555 0123")
    b = await identified(service, "212 555 0199")
    mine = await call(service, "book_appointment", a, start=NINE_AM, notes="first visit")
    await call(service, "book_appointment", b, start=TEN_AM)
    async with store.transaction(write=False) as tx:
        before = await tx.get_appointment(mine.appointment.id)

    error = await refused(
        service, "modify_appointment", a, appointment_id=mine.appointment.id, new_start=TEN_AM
    )
    assert error.code == "slot_taken"
    async with store.transaction(write=False) as tx:
        after = await tx.get_appointment(mine.appointment.id)
        busy = await tx.busy_between("default", _day_window())
    assert after == before
    assert after.status == "confirmed"
    assert len(busy) == 2


def _day_window() -> Any:
    from voicebook.scheduling.availability import Interval

    start = datetime(2027, 3, 2, 5, 0, tzinfo=timezone.utc)
    return Interval(start, start + timedelta(days=1))


async def test_database_refuses_partial_overlap(service: SchedulingService, store: Any) -> None:
    """Not just the service: the store itself refuses overlapping confirmed rows."""
    session = await identified(service, "415 555 0123")
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    async with store.transaction(write=False) as tx:
        original = await tx.get_appointment(booked.appointment.id)
    start = original.starts_at + timedelta(minutes=15)
    overlapping = AppointmentRecord(
        id="apt_overlap",
        user_id=original.user_id,
        resource="default",
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        status="confirmed",
        name=None,
        notes=None,
        session_id=None,
        created_at=start,
        updated_at=start,
    )
    span = Interval(overlapping.starts_at, overlapping.ends_at)
    with pytest.raises(OverlapError):
        async with store.transaction() as tx:
            await tx.insert_appointment(overlapping, span)
    # A different rule set (20-minute grid) asking for 9:20 is refused the same way.
    rules = AvailabilityRules(
        zone=service.rules.zone, weekly=parse_hours("mon-fri 09:00-17:00"), slot_minutes=20
    )
    other = SchedulingService(store, rules, clock=service.clock)
    error = await refused(other, "book_appointment", session, start="2027-03-02T09:20:00-05:00")
    assert error.code == "slot_taken"
    # Cancelled rows may overlap.
    overlapping.status = "cancelled"
    async with store.transaction() as tx:
        await tx.insert_appointment(overlapping, span)


ERROR_CASES = [
    ("identify_user", {"phone": "call me maybe"}, "invalid_phone", "phone number"),
    ("book_appointment", {"start": "tomorrow at three"}, "invalid_time", "date and time"),
    ("book_appointment", {"start": "2027-02-26T10:00:00-05:00"}, "in_past", "already passed"),
    ("book_appointment", {"start": "2027-03-02T08:30:00-05:00"}, "outside_hours", "opening hours"),
    ("book_appointment", {"start": "2027-03-01T09:00:00-05:00"}, "too_soon", "notice"),
    ("book_appointment", {"start": "2027-04-20T10:00:00-04:00"}, "too_far", "30 days"),
    ("book_appointment", {"start": "2027-03-02T09:10:00-05:00"}, "not_on_grid", "9:00 AM"),
    ("book_appointment", {"start": "2027-03-07T10:00:00-05:00"}, "outside_hours", "Sunday"),
    ("book_appointment", {"slot_id": "slot_x", "start": NINE_AM}, "invalid_input", "exactly one"),
    ("book_appointment", {"slot_id": "tomorrow"}, "invalid_input", "slot"),
    ("fetch_slots", {"date": "2027-03-07"}, "closed", "closed on Sunday, March 7"),
    ("fetch_slots", {"limit": 500}, "invalid_input", "limit"),
    ("cancel_appointment", {"appointment_id": "apt_missing"}, "not_found", "couldn't find"),
    ("modify_appointment", {"start": NINE_AM, "new_start": TEN_AM}, "not_found", "March 2"),
]


@pytest.mark.parametrize(("tool", "args", "code", "words"), ERROR_CASES)
async def test_error_codes_and_messages(
    service: SchedulingService, tool: str, args: dict[str, Any], code: str, words: str
) -> None:
    session = await identified(service)
    error = await refused(service, tool, session, **args)
    assert error.code == code
    assert words in error.message
    assert error.message.endswith((".", "?"))


async def test_already_cancelled_and_session_ended(service: SchedulingService) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    await call(service, "cancel_appointment", session, appointment_id=booked.appointment.id)
    again = await refused(
        service, "cancel_appointment", session, appointment_id=booked.appointment.id
    )
    assert again.code == "already_cancelled"
    assert "already cancelled" in again.message
    summary = await service.end_session(session, reason="page")
    assert summary.actions[-1].kind == "cancelled"
    ended = await refused(service, "fetch_slots", session)
    assert (ended.code, ended.message) == ("session_ended", "This conversation has already ended.")
    # Ending twice returns the same summary.
    assert await service.end_session(session) == summary


async def test_idempotent_replay_changes_nothing(service: SchedulingService, store: Any) -> None:
    session = await identified(service)
    request = {"session_id": session, "start": NINE_AM}
    first = await service.run_tool("book_appointment", request, "call_replay")
    events_before = await service.session_events(session)
    second = await service.run_tool("book_appointment", dict(request), "call_replay")
    assert second.replayed is True and first.replayed is False
    assert second.response == first.response
    assert await service.session_events(session) == events_before
    async with store.transaction(write=False) as tx:
        assert len(await tx.busy_between("default", _day_window())) == 1

    conflict = None
    try:
        await service.run_tool("book_appointment", {**request, "start": TEN_AM}, "call_replay")
    except DomainError as error:
        conflict = error
    assert conflict is not None and conflict.code == "idempotency_conflict"
    assert conflict.message == (
        "That request key was already used for a different request; please retry with a new key."
    )


async def test_replayed_failure_stays_a_failure(service: SchedulingService) -> None:
    """A retry of a refused booking repeats the refusal even after the slot frees up."""
    a = await identified(service, "415 555 0123")
    b = await identified(service, "212 555 0199")
    booked = await call(service, "book_appointment", a, start=NINE_AM)
    request = {"session_id": b, "start": NINE_AM}
    with pytest.raises(DomainError) as first:
        await service.run_tool("book_appointment", request, "call_retry")
    await call(service, "cancel_appointment", a, appointment_id=booked.appointment.id)
    with pytest.raises(DomainError) as second:
        await service.run_tool("book_appointment", request, "call_retry")
    assert second.value.code == first.value.code == "slot_taken"
    assert getattr(second.value, "replayed", False) is True


async def test_end_conversation_replay_after_end(service: SchedulingService) -> None:
    session = await identified(service)
    first = await service.run_tool("end_conversation", {"session_id": session}, "call_bye")
    again = await service.run_tool("end_conversation", {"session_id": session}, "call_bye")
    assert again.replayed and again.response == first.response


async def test_naive_start_is_business_local_time(service: SchedulingService) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start="2027-03-02T09:00:00")
    assert booked.appointment.start == datetime(2027, 3, 2, 14, 0, tzinfo=timezone.utc)


async def test_unknown_session_and_tool(service: SchedulingService) -> None:
    with pytest.raises(DomainError) as missing:
        await service.run_tool("fetch_slots", {"session_id": "nope"}, key())
    assert missing.value.code == "not_found" and missing.value.status == 404
    with pytest.raises(DomainError) as tool:
        await service.run_tool("drop_tables", {"session_id": "nope"}, key())
    assert tool.value.code == "not_found"


async def test_past_appointments_cannot_change(service: SchedulingService, clock: Any) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    clock.advance(days=1, hours=2)  # now Tuesday 10:15, after the 9:00 appointment
    error = await refused(
        service, "cancel_appointment", session, appointment_id=booked.appointment.id
    )
    assert error.code == "in_past"
    assert error.message == "Your appointment on Tuesday, March 2 at 9:00 AM has already started."
    assert (await call(service, "retrieve_appointments", session)).appointments == []
    history = await call(service, "retrieve_appointments", session, include_past=True)
    assert [a.id for a in history.appointments] == [booked.appointment.id]


async def test_unreachable_database_is_store_unavailable(rules: AvailabilityRules) -> None:
    store = PostgresStore(
        "postgresql://root@127.0.0.1:1/nowhere", connect_timeout=1, check_schema=False
    )
    await store.open()
    try:
        service = SchedulingService(store, rules)
        with pytest.raises(DomainError) as caught:
            await service.start_session()
        assert caught.value.code == "store_unavailable"
        assert caught.value.status == 503
        assert caught.value.message == (
            "The booking system is briefly unavailable; please try again in a moment."
        )
    finally:
        await store.close()


async def test_malformed_call_is_a_failed_event(service: SchedulingService) -> None:
    session = await identified(service)
    with pytest.raises(DomainError) as caught:
        await service.run_tool(
            "book_appointment", {"session_id": session, "start": "half past never"}, "call_bad"
        )
    assert caught.value.code == "invalid_time"
    events = await service.session_events(session)
    failed = events[-1].payload
    assert (failed["name"], failed["status"], failed["id"]) == (
        "book_appointment",
        "failed",
        "call_bad",
    )
    assert failed["error"]["code"] == "invalid_time"
    assert failed["args"] == {"start": "half past never"}


async def test_slot_search_widens_past_a_fully_booked_stretch(store: Any, clock: Any) -> None:
    """The search reads a short span first; a booked-out stretch must not hide later slots."""
    rules = AvailabilityRules(
        zone=NEW_YORK_ZONE, weekly=parse_hours("mon-fri 09:00-10:00"), min_notice_minutes=60
    )
    service = SchedulingService(store, rules, clock=clock)
    session = await identified(service)
    for start in ("2027-03-01T09:30", "2027-03-02T09:00", "2027-03-02T09:30", "2027-03-03T09:00"):
        await call(service, "book_appointment", session, start=start)
    found = await call(service, "fetch_slots", session, limit=3)
    assert [s.label for s in found.slots] == [
        "Wednesday, March 3 at 9:30 AM",
        "Thursday, March 4 at 9:00 AM",
        "Thursday, March 4 at 9:30 AM",
    ]
    everything = await call(service, "fetch_slots", session, limit=200)
    # The horizon ends Wednesday, March 31 at 13:15 UTC = 9:15 AM EDT (DST began March 14):
    # 22 full weekdays x 2 slots + March 31 at 9:00, minus Monday 9:00 (notice) and 4 booked.
    assert len(everything.slots) == 22 * 2 + 1 - 1 - 4
    assert everything.slots[-1].label == "Wednesday, March 31 at 9:00 AM"
