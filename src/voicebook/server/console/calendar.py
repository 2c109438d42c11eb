"""The console's Calendar tab: the business's days by resource, and the operator's cancel and
move of an appointment.

`GET /console/api/calendar` gives what the grid draws for one local day or seven: every staff
member and room, each one's opening hours per day (instants, and the wall-clock minutes the grid
places them at, so DST days come out right), and the appointments starting in that window, every
status, phones masked, at most `CALENDAR_MAX`. The writes are the scheduling service's operator
actions (scheduling/operator.py: the tools' rules, recorded on the appointment rows and never on
a caller's session); `GET /console/api/calendar/slots` offers the free times an appointment may
move to, and `GET /console/api/calendar/free` those a new booking of a service may take, so the
page only offers times the write will take. `POST /console/api/appointments` books for a caller
who phoned or walked in.
"""

from __future__ import annotations

from datetime import date as Date
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from voicebook.models import BusinessAppointment, Inbound, Instant, LocalDate, Slot
from voicebook.scheduling import availability as av
from voicebook.scheduling import calendar as cal
from voicebook.scheduling.business import Business
from voicebook.server.business import appointment_view, resolve_resource
from voicebook.server.console.auth import Operator, OperatorWrite
from voicebook.server.dependencies import Ctx
from voicebook.store.base import BookedRecord

router = APIRouter(prefix="/console/api", tags=["console"], include_in_schema=False)
CALENDAR_MAX = 1000
"""At most this many appointments in one answer (`truncated` says when there were more)."""
APPOINTMENT_ID = r"^[A-Za-z0-9_-]{1,64}$"


class CalendarResource(BaseModel):
    id: str
    name: str
    kind: str
    services: list[str]


class CalendarService(BaseModel):
    id: str
    name: str
    minutes: int


class OpenSpan(BaseModel):
    """An opening range of one day: its instants, and its wall-clock minutes on that day."""

    start: datetime
    end: datetime
    start_minute: int
    end_minute: int


class CalendarDay(BaseModel):
    date: Date
    hours: dict[str, list[OpenSpan]] = Field(description="Resource id → its opening ranges.")


class CalendarAppointment(BusinessAppointment):
    date: Date = Field(description="The local day it starts on.")
    start_minute: int
    end_minute: int = Field(
        description="On its start's day, never before start_minute plus its length (the hour "
        "repeated when DST ends); 1440 when it runs past midnight."
    )
    cancel_reason: str | None = None
    rescheduled_from: str | None = None


class CalendarResponse(BaseModel):
    date: Date
    timezone: str
    today: Date
    resource: str | None
    resources: list[CalendarResource] = Field(description="Every staff member and room.")
    services: list[CalendarService]
    days: list[CalendarDay]
    appointments: list[CalendarAppointment]
    truncated: bool


class BookBody(Inbound):
    phone: str = Field(min_length=1, max_length=64, description="The caller's number.")
    service: str = Field(min_length=1, max_length=100)
    start: Instant
    resource: str | None = Field(
        default=None, max_length=100, description="A staff member; none: anyone free then."
    )
    name: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=2000)


class FreeSlots(BaseModel):
    service: str
    date: Date
    timezone: str
    slots: list[Slot]


class CancelBody(Inbound):
    reason: str | None = Field(default=None, max_length=500)


class RescheduleBody(Inbound):
    start: Instant
    resource: str | None = Field(default=None, max_length=100)


class ChangeResponse(BaseModel):
    appointment: CalendarAppointment
    previous: CalendarAppointment | None = None


class MoveSlots(BaseModel):
    appointment: CalendarAppointment
    date: Date
    timezone: str
    slots: list[Slot]


def calendar_item(business: Business, booked: BookedRecord) -> CalendarAppointment:
    record, rules = booked.appointment, business.rules
    day = av.local_date(rules, record.starts_at)
    start_minute, end_minute = cal.wall_span(rules, day, record.starts_at, record.ends_at)
    return CalendarAppointment(
        **appointment_view(business, booked).model_dump(),
        date=day,
        start_minute=start_minute,
        end_minute=end_minute,
        cancel_reason=record.cancel_reason if record.status == "cancelled" else None,
        rescheduled_from=record.rescheduled_from,
    )


def _open_span(rules: av.AvailabilityRules, day: Date, span: av.Interval) -> OpenSpan:
    start_minute, end_minute = cal.wall_span(rules, day, span.start, span.end)
    return OpenSpan(
        start=span.start.astimezone(rules.zone),
        end=span.end.astimezone(rules.zone),
        start_minute=start_minute,
        end_minute=end_minute,
    )


def _day(business: Business, day: Date, resources: list[str]) -> CalendarDay:
    rules, hours = business.rules, {}
    for resource in business.resources:
        if resource.id in resources:
            hours[resource.id] = [
                _open_span(rules, day, span) for span in cal.opening_spans(business, resource, day)
            ]
    return CalendarDay(date=day, hours=hours)


@router.get("/calendar", response_model=CalendarResponse)
async def calendar(
    _: Operator,
    ctx: Ctx,
    date: Annotated[LocalDate | None, Query()] = None,
    days: Annotated[int, Query(ge=1, le=7)] = 1,
    resource: Annotated[str | None, Query(max_length=100)] = None,
) -> CalendarResponse:
    """One local day or seven from `date` (default: today in the business zone)."""
    business = ctx.service.business
    rules = business.rules
    today = av.local_date(rules, ctx.service.clock())
    first = date or today
    chosen = resolve_resource(business, resource) if resource is not None else None
    shown = [r.id for r in business.resources if chosen is None or r.id == chosen]
    async with ctx.store.transaction(write=False) as tx:
        rows = await tx.appointments_starting(
            cal.days_window(rules, first, days), resource=chosen, limit=CALENDAR_MAX + 1
        )
    return CalendarResponse(
        date=first,
        timezone=rules.zone.key,
        today=today,
        resource=chosen,
        resources=[
            CalendarResource(id=r.id, name=r.name, kind=r.kind, services=sorted(r.services))
            for r in business.resources
        ],
        services=[
            CalendarService(id=s.id, name=s.name, minutes=s.minutes) for s in business.services
        ],
        days=[_day(business, first + timedelta(n), shown) for n in range(days)],
        appointments=[calendar_item(business, row) for row in rows[:CALENDAR_MAX]],
        truncated=len(rows) > CALENDAR_MAX,
    )


@router.get("/calendar/slots", response_model=MoveSlots)
async def move_slots(
    _: Operator,
    ctx: Ctx,
    appointment: Annotated[str, Query(pattern=APPOINTMENT_ID)],
    date: Annotated[LocalDate, Query()],
    resource: Annotated[str | None, Query(max_length=100)] = None,
) -> MoveSlots:
    """The free times on `date` the appointment may move to (with `resource`, or anyone)."""
    service = ctx.service
    booked, slots = await service.operator_slots(appointment, date, resource)
    return MoveSlots(
        appointment=calendar_item(service.business, booked),
        date=date,
        timezone=service.rules.zone.key,
        slots=slots,
    )


@router.get("/calendar/free", response_model=FreeSlots)
async def free_slots(
    _: Operator,
    ctx: Ctx,
    service: Annotated[str, Query(min_length=1, max_length=100)],
    date: Annotated[LocalDate, Query()],
    resource: Annotated[str | None, Query(max_length=100)] = None,
) -> FreeSlots:
    """The free times of `service` on `date` (with `resource`, or anyone) a booking may take."""
    chosen, slots = await ctx.service.operator_free(service, date, resource)
    return FreeSlots(service=chosen.id, date=date, timezone=ctx.service.rules.zone.key, slots=slots)


@router.post("/appointments", response_model=ChangeResponse, status_code=201)
async def book(who: OperatorWrite, ctx: Ctx, body: BookBody) -> ChangeResponse:
    """Book for a caller who phoned or walked in, as the tool books (a free slot of the
    service with a staff member who gives it)."""
    booked = await ctx.service.operator_book(
        body.phone,
        body.service,
        body.start,
        body.resource,
        name=body.name or None,
        notes=body.notes or None,
        operator=who.account,
    )
    return ChangeResponse(appointment=calendar_item(ctx.service.business, booked))


AppointmentId = Annotated[str, Path(pattern=APPOINTMENT_ID)]


@router.post("/appointments/{appointment_id}/cancel", response_model=ChangeResponse)
async def cancel(
    who: OperatorWrite, ctx: Ctx, appointment_id: AppointmentId, body: CancelBody | None = None
) -> ChangeResponse:
    """Cancel it, as the tool does (not a started, cancelled or moved one)."""
    reason = body.reason if body is not None and body.reason else None
    booked = await ctx.service.operator_cancel(appointment_id, reason, who.account)
    return ChangeResponse(appointment=calendar_item(ctx.service.business, booked))


@router.post("/appointments/{appointment_id}/reschedule", response_model=ChangeResponse)
async def reschedule(
    who: OperatorWrite, ctx: Ctx, appointment_id: AppointmentId, body: RescheduleBody
) -> ChangeResponse:
    """Move it to a free slot of its service, as the tool does; a refused move changes nothing."""
    moved = await ctx.service.operator_reschedule(
        appointment_id, body.start, body.resource, who.account
    )
    business = ctx.service.business
    return ChangeResponse(
        appointment=calendar_item(business, moved.appointment),
        previous=calendar_item(business, moved.previous),
    )
