"""Cancelled, moved and past appointments cannot be moved (DESIGN §4), on SQLite and Postgres:
the refusal is `already_cancelled` / `in_past`, nothing changes (the new time stays free for
anyone), and the refused call is a failed tool call on the session's log."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import call, identified, key
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.service import SchedulingService

NINE_AM = "2027-03-02T09:00:00-05:00"  # Tuesday, inside opening hours, past minimum notice
TEN_AM = "2027-03-02T10:00:00-05:00"
WEDNESDAY_TEN_AM = "2027-03-03T10:00:00-05:00"


async def refused_move(
    service: SchedulingService, session_id: str, appointment_id: str, new_start: str
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await service.run_tool(
            "modify_appointment",
            {"session_id": session_id, "appointment_id": appointment_id, "new_start": new_start},
            key(),
        )
    return caught.value


async def last_call(service: SchedulingService, session_id: str) -> dict[str, Any]:
    events = await service.session_events(session_id)
    return [e.payload for e in events if e.type == "tool_call"][-1]


async def assert_free(service: SchedulingService, start: str) -> None:
    """Another caller can still book `start`: the refused move took nothing."""
    other = await identified(service, "212 555 0177")
    booked = await call(service, "book_appointment", other, start=start)
    assert booked.appointment.status == "confirmed"


async def test_a_cancelled_appointment_cannot_be_moved(service: SchedulingService) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    await call(service, "cancel_appointment", session, appointment_id=booked.appointment.id)
    error = await refused_move(service, session, booked.appointment.id, TEN_AM)
    assert error.code == "already_cancelled"
    assert "already cancelled" in error.message
    logged = await last_call(service, session)
    assert (logged["name"], logged["status"], logged["error"]["code"]) == (
        "modify_appointment",
        "failed",
        "already_cancelled",
    )
    listed = await call(service, "retrieve_appointments", session, include_cancelled=True)
    assert [(a.id, a.status) for a in listed.appointments] == [(booked.appointment.id, "cancelled")]
    await assert_free(service, TEN_AM)


async def test_a_moved_appointment_cannot_be_moved_again(service: SchedulingService) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    moved = await call(
        service,
        "modify_appointment",
        session,
        appointment_id=booked.appointment.id,
        new_start=TEN_AM,
    )
    error = await refused_move(service, session, booked.appointment.id, WEDNESDAY_TEN_AM)
    assert error.code == "already_cancelled"
    assert "already moved" in error.message
    listed = await call(service, "retrieve_appointments", session)
    assert [a.id for a in listed.appointments] == [moved.appointment.id]
    await assert_free(service, WEDNESDAY_TEN_AM)


async def test_a_past_appointment_cannot_be_moved(service: SchedulingService, clock: Any) -> None:
    session = await identified(service)
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    clock.advance(days=1, hours=2)  # now Tuesday 10:15, after the 9:00 appointment
    error = await refused_move(service, session, booked.appointment.id, WEDNESDAY_TEN_AM)
    assert error.code == "in_past"
    assert error.message == "Your appointment on Tuesday, March 2 at 9:00 AM has already started."
    logged = await last_call(service, session)
    assert (logged["status"], logged["error"]["code"]) == ("failed", "in_past")
    history = await call(service, "retrieve_appointments", session, include_past=True)
    assert [(a.id, a.status, a.start) for a in history.appointments] == [
        (booked.appointment.id, "confirmed", booked.appointment.start)
    ]
    await assert_free(service, WEDNESDAY_TEN_AM)
