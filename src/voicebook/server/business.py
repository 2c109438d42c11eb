"""The business's read API (service key): its appointments of one local day, a page at a time.

The day is a local date in the business zone, so "today at the clinic" is what the owner asked
for whatever the server's zone, DST days included. Pages are keyset-paged on (start, id): the
`next` cursor names the last appointment returned, so bookings made while someone pages are
neither skipped nor shown twice. Phone numbers leave the server masked, as everywhere (DESIGN §3).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from voicebook.models import (
    APPOINTMENTS_PAGE_DEFAULT,
    APPOINTMENTS_PAGE_MAX,
    BusinessAppointment,
    BusinessAppointmentsResponse,
    ErrorBody,
    LocalDate,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Business
from voicebook.scheduling.errors import InvalidInput, NotFound
from voicebook.scheduling.phone import mask_phone
from voicebook.server.dependencies import Ctx, require_service_key
from voicebook.store.base import AppointmentRecord, BookedRecord

router = APIRouter(tags=["business"], dependencies=[Depends(require_service_key)])

_CURSOR = re.compile(r"^(\d{8}T\d{12})Z\.([A-Za-z0-9_-]{1,64})$")
_CURSOR_TIME = "%Y%m%dT%H%M%S%f"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong service key."},
    404: {"model": ErrorBody, "description": "No staff member or room by that id or name."},
    422: {"model": ErrorBody, "description": "Invalid date, cursor or limit."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}


def cursor_of(record: AppointmentRecord) -> str:
    """The cursor that continues after `record`: its UTC start and id."""
    start = record.starts_at.astimezone(timezone.utc)
    return f"{start.strftime(_CURSOR_TIME)}Z.{record.id}"


def parse_cursor(text: str) -> tuple[datetime, str]:
    """(start, id) of a cursor `cursor_of` made; anything else is invalid input."""
    found = _CURSOR.match(text)
    if found is None:
        raise InvalidInput("That page cursor is not one this server gave out.", field="after")
    try:
        start = datetime.strptime(found[1], _CURSOR_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidInput(
            "That page cursor is not one this server gave out.", field="after"
        ) from None
    return start, found[2]


def appointment_view(business: Business, booked: BookedRecord) -> BusinessAppointment:
    """An appointment as the business sees it (the console's calendar shows the same)."""
    record = booked.appointment
    service = next((s for s in business.services if s.id == record.service), None)
    staff = business.resource(record.resource)
    room = business.resource(record.room) if record.room else None
    with_whom = f" with {staff.name}" if staff is not None and len(business.staff) > 1 else ""
    return BusinessAppointment(
        id=record.id,
        start=record.starts_at.astimezone(business.rules.zone),
        end=record.ends_at.astimezone(business.rules.zone),
        status=record.status,
        name=record.name or booked.user_name,
        notes=record.notes,
        label=av.label(business.rules, record.starts_at) + with_whom,
        service=record.service,
        service_name=service.name if service else None,
        resource=record.resource,
        resource_name=staff.name if staff else None,
        room=record.room,
        room_name=room.name if room else None,
        phone_masked=mask_phone(booked.phone),
        created_at=record.created_at,
        changed_by=record.changed_by,
        changed_by_operator=record.changed_by_operator,
    )


def resolve_resource(business: Business, wanted: str) -> str:
    """The id of the staff member or room called `wanted` (id or name); NotFound lists them."""
    found = business.resource(wanted)
    if found is None:
        known = ", ".join(f"{r.id} ({r.name})" for r in business.resources)
        raise NotFound(f"There is no staff member or room called {wanted!r}; see {known}.")
    return found.id


@router.get(
    "/business/appointments",
    response_model=BusinessAppointmentsResponse,
    responses=ERRORS,
    summary="The business's appointments starting on one local day, by resource, paged",
)
async def business_appointments(
    ctx: Ctx,
    date: Annotated[
        LocalDate | None,
        Query(description="Local date in the business zone (default: today there)."),
    ] = None,
    resource: Annotated[
        str | None,
        Query(max_length=100, description="Only this staff member's or room's (id or name)."),
    ] = None,
    after: Annotated[
        str | None, Query(max_length=120, description="The `next` cursor of the previous page.")
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=APPOINTMENTS_PAGE_MAX, description=f"At most {APPOINTMENTS_PAGE_MAX}."),
    ] = APPOINTMENTS_PAGE_DEFAULT,
) -> Any:
    """Every status is listed (a cancelled or moved appointment says so), ordered by start then
    id; `next` is null on the last page."""
    business = ctx.service.business
    rules = business.rules
    day = date or av.local_date(rules, ctx.service.clock())
    resource_id = resolve_resource(business, resource) if resource is not None else None
    cursor = parse_cursor(after) if after is not None else None
    window = av.Interval(av.to_utc(rules, day, 0), av.to_utc(rules, day, 24 * 60))
    async with ctx.store.transaction(write=False) as tx:
        rows = await tx.appointments_starting(
            window, resource=resource_id, after=cursor, limit=limit + 1
        )
    page = rows[:limit]
    return BusinessAppointmentsResponse(
        date=day,
        timezone=rules.zone.key,
        resource=resource_id,
        appointments=[appointment_view(business, row) for row in page],
        next=cursor_of(page[-1].appointment) if len(rows) > limit else None,
    )
