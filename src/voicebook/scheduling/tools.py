"""The seven tool operations (DESIGN §4) and the end-of-session summary, on an open transaction.

`ToolHandlers` holds the rules; `SchedulingService` (service.py) runs each handler inside the
transaction that also claims the idempotency key, locks the session and appends the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from voicebook.models import (
    Appointment,
    BookAppointmentRequest,
    BookAppointmentResponse,
    CancelAppointmentRequest,
    CancelAppointmentResponse,
    EndConversationRequest,
    EndConversationResponse,
    FetchSlotsRequest,
    FetchSlotsResponse,
    IdentifyUserRequest,
    IdentifyUserResponse,
    ModifyAppointmentRequest,
    ModifyAppointmentResponse,
    RetrieveAppointmentsRequest,
    RetrieveAppointmentsResponse,
    Slot,
    Summary,
    User,
    WireModel,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.cost import Prices, price
from voicebook.scheduling.errors import (
    AlreadyCancelled,
    Closed,
    InPast,
    InvalidInput,
    NotFound,
    NotIdentified,
    SlotTaken,
    TooFar,
)
from voicebook.scheduling.ids import new_appointment_id, new_user_id
from voicebook.scheduling.phone import mask_phone, normalize_phone
from voicebook.scheduling.summary import build_summary
from voicebook.store.base import (
    AppointmentRecord,
    OverlapError,
    SessionRecord,
    Store,
    StoreTransaction,
    UserRecord,
)

ALTERNATIVES = 3
"""How many next free slots a `slot_taken` error offers."""
FIRST_SPAN = timedelta(days=2)
"""How far ahead a slot search first looks before widening (see `_free`)."""


@dataclass
class _Done:
    """What a tool handler hands back to the transaction wrapper."""

    response: WireModel
    detail: str
    after: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Events to append after the tool_call event."""
    session_fields: dict[str, Any] = field(default_factory=dict)
    """Session columns the tool changes (written with the events, in one batch)."""


class ToolHandlers:
    """The tools' rules. A handler gets (tx, session, caller, request, now) and returns `_Done`."""

    store: Store
    rules: av.AvailabilityRules
    resource: str
    default_region: str
    prices: Prices
    clock: Callable[[], datetime]

    # --- helpers shared by the tools ------------------------------------------------------------

    @staticmethod
    def _caller(user: UserRecord | None) -> UserRecord:
        if user is None:
            raise NotIdentified()
        return user

    def _appointment(self, record: AppointmentRecord) -> Appointment:
        return Appointment(
            id=record.id,
            start=record.starts_at,
            end=record.ends_at,
            status=record.status,
            name=record.name,
            notes=record.notes,
            label=av.label(self.rules, record.starts_at),
        )

    def _slot(self, interval: av.Interval) -> Slot:
        return Slot(
            slot_id=av.slot_id(interval.start),
            start=interval.start.astimezone(self.rules.zone),
            end=interval.end.astimezone(self.rules.zone),
            label=av.label(self.rules, interval.start),
        )

    def _instant(self, value: datetime) -> datetime:
        """An aware UTC instant; a time without offset is read as business-zone wall time."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.rules.zone)
        return value.astimezone(timezone.utc)

    def _requested_start(self, slot_id: str | None, start: datetime | None) -> datetime:
        if slot_id is not None:
            return av.parse_slot_id(slot_id)
        assert start is not None  # the request model requires one of the two
        return self._instant(start)

    async def _free(
        self,
        tx: StoreTransaction,
        now: datetime,
        limit: int,
        *,
        on: date | None = None,
        part_of_day: str | None = None,
        not_before: datetime | None = None,
    ) -> list[av.Interval]:
        """Up to `limit` free slots, reading only the bookings of the span it needs.

        Across the horizon it looks a couple of days ahead first and widens the span only when
        that does not yield `limit` slots, so the cost follows the answer, not the calendar.
        """
        rules = self.rules
        if on is not None:
            busy = await tx.busy_between(self.resource, av.search_window(rules, now, on))
            return av.free_slots(
                rules, now, busy, on=on, part_of_day=part_of_day, limit=limit, not_before=not_before
            )
        start = max(rules.earliest(now), not_before or rules.earliest(now))
        latest, span = rules.latest(now), FIRST_SPAN
        while True:
            before = min(start + span, latest)
            window = av.search_window(rules, now, not_before=start, before=before)
            busy = await tx.busy_between(self.resource, window)
            slots = av.free_slots(
                rules, now, busy, part_of_day=part_of_day, limit=limit, not_before=start,
                before=before,
            )  # fmt: skip
            if len(slots) >= limit or before >= latest:
                return slots
            span *= 4

    async def _alternatives(
        self, tx: StoreTransaction, now: datetime, after: datetime
    ) -> list[dict[str, Any]]:
        slots = await self._free(tx, now, ALTERNATIVES, not_before=after)
        if not slots:
            slots = await self._free(tx, now, ALTERNATIVES)
        return [self._slot(s).model_dump(mode="json") for s in slots]

    async def _ensure_free(
        self,
        tx: StoreTransaction,
        slot: av.Interval,
        now: datetime,
        ignore: AppointmentRecord | None = None,
    ) -> None:
        """Refuse a slot that a booking (buffer included) already covers.

        Without a buffer the database's overlap guard is the whole check, so no query is needed.
        """
        if not self.rules.buffer_minutes:
            return
        window = av.Interval(slot.start - self.rules.buffer, slot.end + self.rules.buffer)
        busy = await tx.busy_between(self.resource, window)
        if ignore is not None:
            busy = [b for b in busy if (b.start, b.end) != (ignore.starts_at, ignore.ends_at)]
        if av.BusyIndex(busy).conflicts(slot, self.rules.buffer):
            await self._slot_taken(tx, slot, now)

    async def _slot_taken(self, tx: StoreTransaction, slot: av.Interval, now: datetime) -> None:
        alternatives = await self._alternatives(tx, now, slot.start)
        offer = ", ".join(a["label"] for a in alternatives)
        raise SlotTaken(
            f"Sorry, {av.label(self.rules, slot.start)} is already taken."
            + (f" The next free times are {offer}." if offer else ""),
            alternatives=alternatives,
        )

    async def _insert(self, tx: StoreTransaction, record: AppointmentRecord, now: datetime) -> None:
        try:
            await tx.insert_appointment(record)
        except OverlapError:
            await self._slot_taken(tx, av.Interval(record.starts_at, record.ends_at), now)

    async def _owned(
        self,
        tx: StoreTransaction,
        user: UserRecord,
        appointment_id: str | None,
        start: datetime | None,
    ) -> AppointmentRecord:
        """The caller's appointment by id or start; another caller's is simply not found."""
        if appointment_id is not None:
            record = await tx.get_appointment(appointment_id)
            if record is None or record.user_id != user.id:
                raise NotFound()
            return record
        assert start is not None
        instant = self._instant(start)
        record = await tx.find_appointment_at(user.id, instant)
        if record is None:
            raise NotFound(
                f"I couldn't find an appointment of yours at {av.label(self.rules, instant)}."
            )
        return record

    def _changeable(self, record: AppointmentRecord, now: datetime) -> None:
        if record.status != "confirmed":
            raise AlreadyCancelled(
                f"Your appointment on {av.label(self.rules, record.starts_at)} is already "
                f"{'cancelled' if record.status == 'cancelled' else 'moved'}."
            )
        if record.starts_at <= now:
            raise InPast(
                f"Your appointment on {av.label(self.rules, record.starts_at)} has already started."
            )

    # --- the seven tools ------------------------------------------------------------------------

    async def _identify_user(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: IdentifyUserRequest,
        now: datetime,
    ) -> _Done:
        phone = normalize_phone(req.phone, self.default_region)
        user, returning = await tx.upsert_user(phone, req.name, now, new_id=new_user_id())
        upcoming = await tx.list_appointments(user.id, since=now, include_cancelled=False)
        response = IdentifyUserResponse(
            user=User(id=user.id, name=user.name, phone_masked=mask_phone(user.phone)),
            upcoming=[self._appointment(a) for a in upcoming],
            returning=returning,
        )
        who = f"{'returning' if returning else 'new'} caller {mask_phone(phone)}"
        detail = f"Identified {who}" + (f" ({user.name})." if user.name else ".")
        return _Done(response, detail, session_fields={"user_id": user.id})

    async def available_slots(
        self, *, on: date | None = None, part_of_day: str | None = None, limit: int = 5
    ) -> FetchSlotsResponse:
        """Free slots without a session (the `voicebook slots` listing)."""
        async with self.store.transaction(write=False) as tx:
            return await self._find_slots(tx, on, part_of_day, limit, self.clock())

    async def _find_slots(
        self,
        tx: StoreTransaction,
        on: date | None,
        part_of_day: str | None,
        limit: int,
        now: datetime,
    ) -> FetchSlotsResponse:
        if on is not None:
            self._check_day(on, now)
        slots = await self._free(tx, now, limit, on=on, part_of_day=part_of_day)
        return FetchSlotsResponse(
            slots=[self._slot(s) for s in slots], timezone=self.rules.zone.key
        )

    async def _fetch_slots(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: FetchSlotsRequest,
        now: datetime,
    ) -> _Done:
        response = await self._find_slots(tx, req.date, req.part_of_day, req.limit, now)
        if response.slots:
            count = len(response.slots)
            detail = f"Found {count} free slot{'s' * (count != 1)} from {response.slots[0].label}."
        else:
            detail = "No free slots" + (f" on {av.day_label(req.date)}." if req.date else ".")
        return _Done(response, detail)

    def _check_day(self, day: date, now: datetime) -> None:
        today = av.local_date(self.rules, now)
        if day < today:
            raise InPast(f"{av.day_label(day)} has already passed.")
        if day > av.local_date(self.rules, self.rules.latest(now)):
            raise TooFar(f"We only book up to {self.rules.horizon_days} days ahead.")
        if day in self.rules.closed_dates or not self.rules.weekly.get(day.weekday()):
            raise Closed(f"We're closed on {av.day_label(day)}.")

    async def _book_appointment(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: BookAppointmentRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        slot = av.check_bookable(self.rules, now, self._requested_start(req.slot_id, req.start))
        await self._ensure_free(tx, slot, now)
        record = AppointmentRecord(
            id=new_appointment_id(),
            user_id=user.id,
            resource=self.resource,
            starts_at=slot.start,
            ends_at=slot.end,
            status="confirmed",
            name=req.name or user.name,
            notes=req.notes,
            session_id=session.id,
            created_at=now,
            updated_at=now,
        )
        await self._insert(tx, record, now)
        appointment = self._appointment(record)
        return _Done(
            BookAppointmentResponse(appointment=appointment),
            f"Booked {appointment.label} for {mask_phone(user.phone)}.",
        )

    async def _retrieve_appointments(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: RetrieveAppointmentsRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        records = await tx.list_appointments(
            user.id,
            since=None if req.include_past else now,
            include_cancelled=req.include_cancelled,
        )
        count = len(records)
        return _Done(
            RetrieveAppointmentsResponse(appointments=[self._appointment(r) for r in records]),
            f"Listed {count} appointment{'s' * (count != 1)} for {mask_phone(user.phone)}.",
        )

    async def _cancel_appointment(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: CancelAppointmentRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        record = await self._owned(tx, user, req.appointment_id, req.start)
        self._changeable(record, now)
        await tx.set_appointment_status(record.id, "cancelled", now, req.reason)
        record.status, record.updated_at = "cancelled", now
        record.cancelled_at, record.cancel_reason = now, req.reason
        appointment = self._appointment(record)
        return _Done(
            CancelAppointmentResponse(appointment=appointment),
            f"Cancelled {appointment.label} for {mask_phone(user.phone)}.",
        )

    async def _modify_appointment(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: ModifyAppointmentRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        old = await self._owned(tx, user, req.appointment_id, req.start)
        self._changeable(old, now)
        slot = av.check_bookable(
            self.rules, now, self._requested_start(req.new_slot_id, req.new_start)
        )
        if slot.start == old.starts_at:
            raise InvalidInput(
                f"Your appointment is already on {av.label(self.rules, slot.start)}."
            )
        await self._ensure_free(tx, slot, now, ignore=old)
        # Free the old time first so a move into an overlapping slot is allowed; if the insert is
        # refused, the whole transaction rolls back and the original stays exactly as it was.
        await tx.set_appointment_status(old.id, "rescheduled", now, "rescheduled")
        new = AppointmentRecord(
            id=new_appointment_id(),
            user_id=user.id,
            resource=old.resource,
            starts_at=slot.start,
            ends_at=slot.end,
            status="confirmed",
            name=old.name,
            notes=old.notes,
            session_id=session.id,
            created_at=now,
            updated_at=now,
            rescheduled_from=old.id,
        )
        await self._insert(tx, new, now)
        old.status, old.updated_at = "rescheduled", now
        previous, appointment = self._appointment(old), self._appointment(new)
        return _Done(
            ModifyAppointmentResponse(appointment=appointment, previous=previous),
            f"Moved {mask_phone(user.phone)} from {previous.label} to {appointment.label}.",
        )

    async def _end_conversation(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: EndConversationRequest,
        now: datetime,
    ) -> _Done:
        summary, closing, fields = await self._close(
            tx, session, caller, "end_conversation", now, req.preferences, req.recap
        )
        return _Done(
            EndConversationResponse(summary=summary), "Ended the conversation.", closing, fields
        )

    async def _close(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        user: UserRecord | None,
        reason: str,
        now: datetime,
        preferences: Sequence[str],
        recap: str | None,
        usage: dict[str, Any] | None = None,
    ) -> tuple[Summary, list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """Build the summary of an ending session.

        Returns the summary, the closing events in the order the page expects (`status` ended,
        `summary`, `session_closed`) and the session fields that end it, for `append_events`.
        """
        log = await tx.events_after(session.id, 0, 100_000)
        summary = build_summary(
            self.rules,
            session,
            user,
            await tx.session_appointments(session.id),
            log,
            preferences=[*session.preferences, *preferences],
            recap=recap or session.recap,
            now=now,
            cost=price(usage if usage is not None else session.usage, self.prices),
        )
        fields = {
            "state": "ended",
            "ended_at": now,
            "end_reason": reason,
            "summary": summary.model_dump(mode="json"),
            "preferences": summary.preferences,
            "recap": recap or session.recap,
        }
        closing = [
            ("status", {"session_id": session.id, "state": "ended"}),
            ("summary", summary.model_dump(mode="json")),
            ("session_closed", {"session_id": session.id}),
        ]
        return summary, closing, fields
