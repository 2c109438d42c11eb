"""The operator's own changes from the console: book an appointment for a caller (one who
phoned or walked in), cancel one, move one, and the free times either may take — by the tools'
rules (tools.py), without a caller's session.

The rules are the tools' very functions: a cancelled, moved or started appointment cannot be
changed (`_changeable`, which locks the row so two changes run one after the other); the new
time must be a free slot of the appointment's service with a staff member who gives it, and a
room too when the service needs one (`_move` → `_book` → `SlotFinder.offer_at`); the database
refuses an overlapping blocked span under any concurrency, and a refused move rolls the whole
transaction back, so the original stays exactly as it was.

How an operator's change is recorded: on the appointment rows only, never on a caller's
session, each row it touches saying `changed_by = 'operator'` (a caller's say 'caller') and, when
a named console account made it, `changed_by_operator` naming the account. A
cancel sets the row's status, `cancel_reason` (the operator's, or none) and `cancelled_at`; a
move marks the old row `rescheduled` and inserts the new one with `rescheduled_from` naming it.
The new row keeps the old one's session and caller, so the booking stays theirs (a caller who
may change what their session booked may change it still). A booking the operator makes belongs
to the caller of that number and to no session: a caller sees it once their number is proved,
as any appointment under it; the name the operator gives is kept on the appointment, and on the
caller only when voicebook knew no name for them (a name is never overwritten from outside a
proved call). No event is appended to any session:
the caller's session sees nothing new. The change is logged with the appointment ids and the
account only (no phone, no free text).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from voicebook.models import Slot
from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Service
from voicebook.scheduling.errors import InvalidPhone, NotFound
from voicebook.scheduling.ids import new_user_id
from voicebook.scheduling.phone import normalize_phone
from voicebook.scheduling.slots import SlotFinder
from voicebook.scheduling.tools import ToolHandlers
from voicebook.store.base import AppointmentRecord, BookedRecord, StoreTransaction
from voicebook.store.retry import retrying

log = logging.getLogger(__name__)
SLOTS_A_DAY = 200
"""At most this many free times of one day are offered to book or move an appointment to."""
TYPED_PHONE = (
    "That is not a phone number voicebook can read: type the caller's number in full, with its "
    "area code (or + and the country code)."
)
"""An operator typed it (a caller hears "could you say it again, digit by digit?")."""
WHOSE = "This"
"""The refusals speak of "This appointment" to an operator (a caller hears "Your")."""


@dataclass
class OperatorMove:
    """A move's outcome: the new appointment and the old one, each with its caller."""

    appointment: BookedRecord
    previous: BookedRecord


class _Excluding:
    """A transaction whose busy spans leave out one appointment's own holds: the appointment
    being moved may move into time it holds itself (the move frees it first)."""

    def __init__(
        self, tx: StoreTransaction, record: AppointmentRecord, blocked: av.Interval
    ) -> None:
        self._tx = tx
        self._held = {record.resource, record.room} - {None}
        self._blocked = blocked

    async def busy_for(
        self, resources: Sequence[str], window: av.Interval
    ) -> dict[str, list[av.Interval]]:
        found = await self._tx.busy_for(resources, window)
        return {
            resource: [s for s in spans if resource not in self._held or s != self._blocked]
            for resource, spans in found.items()
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class OperatorActions(ToolHandlers):
    """The console's writes on appointments, and the slots its reschedule offers."""

    async def _booked(self, tx: StoreTransaction, record: AppointmentRecord) -> BookedRecord:
        user = await tx.get_user(record.user_id)
        return BookedRecord(record, user.phone if user else "", user.name if user else None)

    def _service_of(self, record: AppointmentRecord) -> Service:
        return self.business.service(record.service)

    async def operator_book(
        self,
        phone: str,
        service_id: str,
        start: datetime,
        resource: str | None,
        *,
        name: str | None = None,
        notes: str | None = None,
        operator: str | None = None,
    ) -> BookedRecord:
        """Book `service_id` at `start` for the caller of `phone` (any way it is written), with
        `resource` (a staff member giving the service) or anyone free then; SlotTaken with the
        next free times when it is not free, as the tool answers."""
        try:
            number = normalize_phone(phone, self.default_region)
        except InvalidPhone:
            raise InvalidPhone(TYPED_PHONE, field="phone") from None
        service = self.business.service(service_id)
        staff = self.business.staff_for(service, resource)
        instant = self._instant(start)
        now = self.clock()
        async for attempt in retrying():
            async with attempt, self.store.transaction() as tx:
                user, _ = await tx.upsert_user(number, None, now, new_id=new_user_id())
                if name and not user.name:
                    await tx.set_user_name(user.id, name, now)
                record = await self._book(
                    tx, None, user.id, now, (instant, service, staff), name=name, notes=notes,
                    by="operator", operator=operator,
                )  # fmt: skip
                booked = await self._booked(tx, record)
        log.info("console: %s booked appointment %s", operator or "the business", record.id)
        return booked

    async def operator_free(
        self, service_id: str, on: date, resource: str | None
    ) -> tuple[Service, list[Slot]]:
        """The free times of `service_id` on local day `on` (with `resource`, or anyone who
        gives it), for a booking the operator makes."""
        service = self.business.service(service_id)
        staff = self.business.staff_for(service, resource)
        async with self.store.transaction(write=False) as tx:
            offers = await SlotFinder(self.business, tx, self.clock()).find(
                service, staff, SLOTS_A_DAY, on=on
            )
        return service, [self._slot(offer) for offer in offers]

    async def operator_cancel(
        self, appointment_id: str, reason: str | None, operator: str | None = None
    ) -> BookedRecord:
        """Cancel the appointment (soft: kept in history, its time freed); `operator` is the
        console account doing it, if any."""
        now = self.clock()
        async for attempt in retrying():
            async with attempt, self.store.transaction() as tx:
                record = await self._changeable(tx, appointment_id, now, WHOSE)
                await tx.set_appointment_status(
                    record.id, "cancelled", now, reason, "operator", operator
                )
                record.status, record.updated_at, record.changed_by = "cancelled", now, "operator"
                record.cancelled_at, record.cancel_reason = now, reason
                record.changed_by_operator = operator
                booked = await self._booked(tx, record)
        log.info("console: %s cancelled appointment %s", operator or "the business", record.id)
        return booked

    async def operator_reschedule(
        self,
        appointment_id: str,
        start: datetime,
        resource: str | None,
        operator: str | None = None,
    ) -> OperatorMove:
        """Move the appointment to `start` (a time without offset is business-zone wall time),
        with `resource` (a staff member giving its service) or else the same person when free
        then, otherwise anyone who gives it; `operator` is the console account doing it."""
        now = self.clock()
        instant = self._instant(start)
        async for attempt in retrying():
            async with attempt, self.store.transaction() as tx:
                old = await self._changeable(tx, appointment_id, now, WHOSE)
                service = self._service_of(old)
                staff = self.business.staff_for(service, resource)
                if resource is None:
                    staff = self._same_first(staff, old.resource)
                target = (instant, service, staff)
                new = await self._move(
                    tx, old, now, target, old.session_id, by="operator", operator=operator
                )
                moved = OperatorMove(await self._booked(tx, new), await self._booked(tx, old))
        log.info(
            "console: %s moved appointment %s to %s", operator or "the business", old.id, new.id
        )
        return moved

    async def operator_slots(
        self, appointment_id: str, on: date, resource: str | None
    ) -> tuple[BookedRecord, list[Slot]]:
        """The free times on local day `on` the appointment may move to (with `resource`, or
        with anyone who gives its service), its own current time left out."""
        now = self.clock()
        async with self.store.transaction(write=False) as tx:
            record = await tx.get_appointment(appointment_id)
            if record is None:
                raise NotFound("There is no appointment with that id.")
            self._check_changeable(record, now, WHOSE)
            service = self._service_of(record)
            staff = self.business.staff_for(service, resource)
            own = self._own_span(service, record)
            view = cast(StoreTransaction, _Excluding(tx, record, own))
            offers = await SlotFinder(self.business, view, now).find(
                service, staff, SLOTS_A_DAY, on=on
            )
            booked = await self._booked(tx, record)
        slots = [
            self._slot(offer)
            for offer in offers
            if not (offer.slot.start == record.starts_at and offer.resource.id == record.resource)
        ]
        return booked, slots

    def _own_span(self, service: Service, record: AppointmentRecord) -> av.Interval:
        """The span `record` holds: its slot widened by its service's buffers."""
        person = self.business.resource(record.resource)
        rules = self.business.rules_for(person, service) if person else self.rules
        return rules.blocked(av.Interval(record.starts_at, record.ends_at))
