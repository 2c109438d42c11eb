"""The eight tool operations (DESIGN §4) and the end-of-session summary, on an open transaction.

`ToolHandlers` holds the rules; `SchedulingService` (service.py) runs each handler inside the
transaction that also claims the idempotency key, locks the session and appends the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal, NoReturn

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
    VerifyCallerRequest,
    VerifyCallerResponse,
    WireModel,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Business, Resource, Service
from voicebook.scheduling.cost import Prices, price
from voicebook.scheduling.errors import (
    AlreadyCancelled,
    CallerFixed,
    CodeExpired,
    DomainError,
    InPast,
    InvalidInput,
    NoCodeSent,
    NotFound,
    NotIdentified,
    SlotTaken,
    TooManyAttempts,
    VerificationRequired,
    WrongCode,
)
from voicebook.scheduling.identity import (
    VerificationPolicy,
    code_matches,
    hash_code,
    may_see_history,
    reveal_name,
)
from voicebook.scheduling.ids import new_appointment_id, new_code_id, new_user_id
from voicebook.scheduling.phone import mask_phone, normalize_phone
from voicebook.scheduling.slots import Offer, SlotFinder
from voicebook.scheduling.summary import build_summary
from voicebook.store.base import (
    AppointmentRecord,
    CodeRecord,
    OverlapError,
    SessionRecord,
    Store,
    StoreTransaction,
    UserRecord,
)

ALTERNATIVES = 3
"""How many next free slots a `slot_taken` error offers."""


@dataclass
class VerifyPlan:
    """What `verify_caller` did outside the transaction (delivery and hosted checks are network
    calls, kept out of the transaction that holds the session lock)."""

    phone: str
    """The number the code went to, or was checked for."""
    code: str | None = None
    """The code voicebook made and delivered (a send with a local verifier)."""
    expires_at: datetime | None = None
    approved: bool | None = None
    """A hosted verifier's verdict on the given code."""


@dataclass
class _Done:
    """What a tool handler hands back to the transaction wrapper."""

    response: WireModel | None
    detail: str
    after: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Events to append after the tool_call event."""
    session_fields: dict[str, Any] = field(default_factory=dict)
    """Session columns the tool changes (written with the events, in one batch)."""
    error: DomainError | None = None
    """A refusal whose changes still commit (a wrong code counts as an attempt): the call is
    recorded as failed, its writes kept, and the error raised after commit."""


class ToolHandlers:
    """The tools' rules. A handler gets (tx, session, caller, request, now) and returns `_Done`."""

    store: Store
    business: Business
    rules: av.AvailabilityRules
    default_region: str
    prices: Prices
    clock: Callable[[], datetime]
    policy: VerificationPolicy

    # --- helpers shared by the tools ------------------------------------------------------------

    @staticmethod
    def _caller(user: UserRecord | None) -> UserRecord:
        if user is None:
            raise NotIdentified()
        return user

    def _proved(self, session: SessionRecord) -> bool:
        return may_see_history(session.identity_level, self.policy)

    def _user(self, user: UserRecord, session: SessionRecord) -> User:
        """The caller as a person may see them: the stored name only once the number is proved."""
        name = reveal_name(session.identity_level, self.policy, user.name, session.caller_name)
        return User(id=user.id, name=name, phone_masked=mask_phone(user.phone))

    async def _visible(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        user: UserRecord,
        *,
        since: datetime | None,
        include_cancelled: bool,
    ) -> list[AppointmentRecord]:
        """The caller's appointments this session may show: all of them once the number is
        proved, else only those this session booked for this caller."""
        if self._proved(session):
            return await tx.list_appointments(
                user.id, since=since, include_cancelled=include_cancelled
            )
        return [
            a
            for a in await tx.session_appointments(session.id)
            if a.user_id == user.id
            and (include_cancelled or a.status == "confirmed")
            and (since is None or a.ends_at > since)
        ]

    def _with(self, resource_id: str) -> str:
        """' with Dr. Lee' when the business has more than one staff member to choose from."""
        if len(self.business.staff) < 2:
            return ""
        resource = self.business.resource(resource_id)
        return f" with {resource.name}" if resource is not None else ""

    def _appointment(self, record: AppointmentRecord) -> Appointment:
        service = next((s for s in self.business.services if s.id == record.service), None)
        resource = self.business.resource(record.resource)
        return Appointment(
            id=record.id,
            start=record.starts_at,
            end=record.ends_at,
            status=record.status,
            name=record.name,
            notes=record.notes,
            label=av.label(self.rules, record.starts_at) + self._with(record.resource),
            service=record.service,
            service_name=service.name if service else None,
            resource=record.resource,
            resource_name=resource.name if resource else None,
            room=record.room,
        )

    def _slot(self, offer: Offer) -> Slot:
        single = self.business.single
        return Slot(
            slot_id=av.slot_id(
                offer.slot.start,
                None if single else offer.service.id,
                None if single else offer.resource.id,
            ),
            start=offer.slot.start.astimezone(self.rules.zone),
            end=offer.slot.end.astimezone(self.rules.zone),
            label=av.label(self.rules, offer.slot.start) + self._with(offer.resource.id),
            service=offer.service.id,
            service_name=offer.service.name,
            resource=offer.resource.id,
            resource_name=offer.resource.name,
        )

    def _instant(self, value: datetime) -> datetime:
        """An aware UTC instant; a time without offset is read as business-zone wall time."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.rules.zone)
        return value.astimezone(timezone.utc)

    def _target(
        self,
        slot_id: str | None,
        start: datetime | None,
        service: str | None,
        staff: str | None,
    ) -> tuple[datetime, Service, list[Resource]]:
        """What a booking asks for: the start, the service and the staff it may go to (the one
        a slot names, the one asked for, or everyone who offers the service)."""
        if slot_id is not None:
            moment, service_id, resource_id = av.parse_slot_id(slot_id)
            chosen = self.business.service(service_id)
            people = self.business.staff_for(chosen, resource_id)
            return moment, chosen, people
        assert start is not None  # the request model requires one of the two
        chosen = self.business.service(service)
        return self._instant(start), chosen, self.business.staff_for(chosen, staff)

    async def _alternatives(
        self, finder: SlotFinder, service: Service, after: datetime
    ) -> list[dict[str, Any]]:
        staff = self.business.staff_for(service)
        offers = await finder.find(service, staff, ALTERNATIVES, not_before=after)
        if not offers:
            offers = await finder.find(service, staff, ALTERNATIVES)
        return [self._slot(offer).model_dump(mode="json") for offer in offers]

    async def _slot_taken(self, finder: SlotFinder, service: Service, start: datetime) -> NoReturn:
        alternatives = await self._alternatives(finder, service, start)
        offer = ", ".join(a["label"] for a in alternatives)
        raise SlotTaken(
            f"Sorry, {av.label(self.rules, start)} is already taken."
            + (f" The next free times are {offer}." if offer else ""),
            alternatives=alternatives,
        )

    async def _book(
        self,
        tx: StoreTransaction,
        session_id: str | None,
        user_id: str,
        now: datetime,
        target: tuple[datetime, Service, list[Resource]],
        *,
        name: str | None,
        notes: str | None,
        rescheduled_from: str | None = None,
        by: Literal["caller", "operator"] = "caller",
        operator: str | None = None,
    ) -> AppointmentRecord:
        """Find the offer for `target`, insert the caller's appointment with its holds, and turn
        any refusal (taken now, or refused by the database under a race) into `slot_taken`
        with the next free times. `operator`: the console account making it, if any."""
        start, service, staff = target
        finder = SlotFinder(self.business, tx, now)
        offer = await finder.offer_at(service, staff, start)
        if offer is None:
            await self._slot_taken(finder, service, start)
        assert offer is not None
        record = AppointmentRecord(
            id=new_appointment_id(),
            user_id=user_id,
            resource=offer.resource.id,
            starts_at=offer.slot.start,
            ends_at=offer.slot.end,
            status="confirmed",
            name=name,
            notes=notes,
            session_id=session_id,
            created_at=now,
            updated_at=now,
            rescheduled_from=rescheduled_from,
            service=offer.service.id,
            room=offer.room.id if offer.room else None,
            changed_by=by,
            changed_by_operator=operator,
        )
        try:
            await tx.insert_appointment(record, offer.blocked)
        except OverlapError:
            await self._slot_taken(finder, service, start)
        return record

    async def _owned(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        user: UserRecord,
        appointment_id: str | None,
        start: datetime | None,
    ) -> AppointmentRecord:
        """The caller's appointment by id or start; another caller's is simply not found.

        Until the number is proved, only what this session booked for this caller counts, and
        anything else is `verification_required` whether or not it exists, so an unproved
        caller learns nothing about the number's other appointments.
        """
        instant = None
        if appointment_id is not None:
            record = await tx.get_appointment(appointment_id)
        else:
            assert start is not None
            instant = self._instant(start)
            record = await tx.find_appointment_at(user.id, instant)
        mine = record is not None and record.user_id == user.id
        if not self._proved(session) and not (
            mine and record is not None and record.session_id == session.id
        ):
            raise VerificationRequired()
        if record is None or not mine:
            if instant is None:
                raise NotFound()
            raise NotFound(
                f"I couldn't find an appointment of yours at {av.label(self.rules, instant)}."
            )
        return record

    async def _changeable(
        self, tx: StoreTransaction, appointment_id: str, now: datetime, whose: str = "Your"
    ) -> AppointmentRecord:
        """The appointment, locked until commit, if it may still be cancelled or moved: read
        again under the lock, so of two concurrent changes the second sees the first's result."""
        record = await tx.get_appointment(appointment_id, lock=True)
        if record is None:
            raise NotFound()
        self._check_changeable(record, now, whose)
        return record

    def _check_changeable(self, record: AppointmentRecord, now: datetime, whose: str) -> None:
        """Refuse a cancelled, moved or already started appointment."""
        if record.status != "confirmed":
            raise AlreadyCancelled(
                f"{whose} appointment on {av.label(self.rules, record.starts_at)} is already "
                f"{'cancelled' if record.status == 'cancelled' else 'moved'}."
            )
        if record.starts_at <= now:
            raise InPast(
                f"{whose} appointment on {av.label(self.rules, record.starts_at)} has already "
                "started."
            )

    async def _move(
        self,
        tx: StoreTransaction,
        old: AppointmentRecord,
        now: datetime,
        target: tuple[datetime, Service, list[Resource]],
        session_id: str | None,
        by: Literal["caller", "operator"] = "caller",
        operator: str | None = None,
    ) -> AppointmentRecord:
        """Move `old` (changeable, locked) to `target` in this transaction, `by` the caller or
        the operator (`operator`: the console account, if any): the new appointment links back
        to it. The old time is freed first so a
        move into an overlapping slot is allowed; if the new one is refused, the whole
        transaction rolls back and the original stays exactly as it was."""
        start, _, staff = target
        if start == old.starts_at and old.resource in {p.id for p in staff[:1]}:
            raise InvalidInput(f"That appointment is already on {av.label(self.rules, start)}.")
        await tx.set_appointment_status(old.id, "rescheduled", now, "rescheduled", by, operator)
        new = await self._book(
            tx, session_id, old.user_id, now, target, name=old.name, notes=old.notes,
            rescheduled_from=old.id, by=by, operator=operator,
        )  # fmt: skip
        old.status, old.updated_at, old.changed_by = "rescheduled", now, by
        old.changed_by_operator = operator
        old.cancelled_at, old.cancel_reason = now, "rescheduled"
        return new

    # --- the eight tools ------------------------------------------------------------------------

    async def _identify_user(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: IdentifyUserRequest,
        now: datetime,
    ) -> _Done:
        if req.phone is None:
            if caller is None:
                raise InvalidInput("I need the caller's phone number first.", field="phone")
            phone = caller.phone
        else:
            phone = normalize_phone(req.phone, self.default_region)
        same = caller is not None and caller.phone == phone
        if caller is not None and session.identity_level == "trusted" and not same:
            raise CallerFixed()
        # Another number replaces the claim and every right the earlier one had.
        level = session.identity_level if same else "claimed"
        session.identity_level = level
        session.caller_name = req.name or (session.caller_name if same else None)
        proved = self._proved(session)
        # A claim never overwrites a stored name; a proved caller's name is theirs to set.
        user, returning = await tx.upsert_user(
            phone, req.name if proved else None, now, new_id=new_user_id()
        )
        upcoming = await self._visible(tx, session, user, since=now, include_cancelled=False)
        response = IdentifyUserResponse(
            user=self._user(user, session),
            upcoming=[self._appointment(a) for a in upcoming],
            returning=returning and proved,
            level=level,  # type: ignore[arg-type]
            verification_required=not proved,
        )
        shown = response.user.name
        who = f"{'returning' if response.returning else 'new'} caller" if proved else "caller"
        detail = (
            f"Identified {who} {mask_phone(phone)}"
            + (f" ({shown})" if shown else "")
            + (f", {level}." if proved else ", not yet verified.")
        )
        fields = {
            "user_id": user.id,
            "identity_level": level,
            "caller_name": session.caller_name,
        }
        return _Done(response, detail, session_fields=fields)

    async def _verify_caller(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: VerifyCallerRequest,
        now: datetime,
        plan: VerifyPlan | None = None,
    ) -> _Done:
        """Send a code (no `code`) or check one; see `SchedulingService._prepare_verify` for
        the part that runs before this transaction."""
        user = self._caller(caller)
        masked = mask_phone(user.phone)
        if self._proved(session):
            return _Done(
                await self._verified(tx, session, user, now),
                f"Caller {masked} is already {session.identity_level}.",
            )
        if plan is None or plan.phone != user.phone:  # the number changed since the send
            raise NoCodeSent()
        if req.code is None:
            assert plan.expires_at is not None
            await tx.insert_code(
                CodeRecord(
                    id=new_code_id(),
                    session_id=session.id,
                    phone=user.phone,
                    code_hash=hash_code(plan.code) if plan.code is not None else None,
                    attempts=0,
                    created_at=now,
                    expires_at=plan.expires_at,
                )
            )
            response = VerifyCallerResponse(
                status="code_sent",
                level="claimed",
                user=self._user(user, session),
                expires_at=plan.expires_at,
            )
            return _Done(response, f"Sent a verification code to {masked}.")
        record = await tx.latest_code(session.id, user.phone)
        self.check_usable(record, now)
        assert record is not None
        attempts = record.attempts + 1
        if record.code_hash is None:
            approved = bool(plan.approved)
        else:
            approved = code_matches(record.code_hash, req.code)
        await tx.update_code(record.id, attempts, now if approved else None)
        if not approved:
            left = self.policy.max_attempts - attempts
            error: DomainError = WrongCode(attempts_left=left) if left > 0 else TooManyAttempts()
            return _Done(None, f"Wrong verification code for {masked}.", error=error)
        session.identity_level = "verified"
        if session.caller_name:  # now proved, the name they gave is theirs to keep
            await tx.set_user_name(user.id, session.caller_name, now)
            user.name = session.caller_name
        return _Done(
            await self._verified(tx, session, user, now),
            f"Verified caller {masked}.",
            session_fields={"identity_level": "verified"},
        )

    async def _verified(
        self, tx: StoreTransaction, session: SessionRecord, user: UserRecord, now: datetime
    ) -> VerifyCallerResponse:
        upcoming = await self._visible(tx, session, user, since=now, include_cancelled=False)
        return VerifyCallerResponse(
            status="verified",
            level=session.identity_level,  # type: ignore[arg-type]
            user=self._user(user, session),
            upcoming=[self._appointment(a) for a in upcoming],
        )

    def check_usable(self, record: CodeRecord | None, now: datetime) -> None:
        """Refuse a code that was never sent, already used, expired or tried too often."""
        if record is None or record.verified_at is not None:
            raise NoCodeSent()
        if record.expires_at <= now:
            raise CodeExpired()
        if record.attempts >= self.policy.max_attempts:
            raise TooManyAttempts()

    async def available_slots(
        self,
        *,
        on: date | None = None,
        part_of_day: str | None = None,
        limit: int = 5,
        service: str | None = None,
        staff: str | None = None,
    ) -> FetchSlotsResponse:
        """Free slots without a session (the `voicebook slots` listing)."""
        async with self.store.transaction(write=False) as tx:
            return await self._find_slots(
                tx, self.clock(), on=on, part_of_day=part_of_day, limit=limit, service=service,
                staff=staff,
            )  # fmt: skip

    async def _find_slots(
        self,
        tx: StoreTransaction,
        now: datetime,
        *,
        on: date | None,
        part_of_day: str | None,
        limit: int,
        service: str | None,
        staff: str | None,
    ) -> FetchSlotsResponse:
        chosen = self.business.service(service)
        people = self.business.staff_for(chosen, staff)
        offers = await SlotFinder(self.business, tx, now).find(
            chosen, people, limit, on=on, part_of_day=part_of_day
        )
        return FetchSlotsResponse(
            slots=[self._slot(offer) for offer in offers], timezone=self.rules.zone.key
        )

    async def _fetch_slots(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: FetchSlotsRequest,
        now: datetime,
    ) -> _Done:
        response = await self._find_slots(
            tx, now, on=req.date, part_of_day=req.part_of_day, limit=req.limit,
            service=req.service, staff=req.staff,
        )  # fmt: skip
        if response.slots:
            count = len(response.slots)
            detail = f"Found {count} free slot{'s' * (count != 1)} from {response.slots[0].label}."
        else:
            detail = "No free slots" + (f" on {av.day_label(req.date)}." if req.date else ".")
        return _Done(response, detail)

    async def _book_appointment(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: BookAppointmentRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        target = self._target(req.slot_id, req.start, req.service, req.staff)
        held = await self._already_held(tx, session, user, target)
        if held is not None:  # the same caller booking the slot they hold: that appointment
            appointment = self._appointment(held)
            return _Done(
                BookAppointmentResponse(appointment=appointment),
                f"{appointment.label} was already booked for {mask_phone(user.phone)}.",
            )

        name = req.name or session.caller_name or (user.name if self._proved(session) else None)
        record = await self._book(tx, session.id, user.id, now, target, name=name, notes=req.notes)
        appointment = self._appointment(record)
        return _Done(
            BookAppointmentResponse(appointment=appointment),
            f"Booked {appointment.label} for {mask_phone(user.phone)}.",
        )

    async def _already_held(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        user: UserRecord,
        target: tuple[datetime, Service, list[Resource]],
    ) -> AppointmentRecord | None:
        """The caller's confirmed appointment of this service at this start with one of these
        staff, if any (a real provider's retried request carries a new tool-call id). Before
        the number is proved, only one this session booked counts."""
        start, service, staff = target
        record = await tx.find_appointment_at(user.id, start)
        if record is None or record.status != "confirmed" or record.service != service.id:
            return None
        if record.resource not in {person.id for person in staff}:
            return None
        if not self._proved(session) and record.session_id != session.id:
            return None
        return record

    async def _retrieve_appointments(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        caller: UserRecord | None,
        req: RetrieveAppointmentsRequest,
        now: datetime,
    ) -> _Done:
        user = self._caller(caller)
        records = await self._visible(
            tx,
            session,
            user,
            since=None if req.include_past else now,
            include_cancelled=req.include_cancelled,
        )
        count = len(records)
        return _Done(
            RetrieveAppointmentsResponse(
                appointments=[self._appointment(r) for r in records],
                verification_required=not self._proved(session),
            ),
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
        found = await self._owned(tx, session, user, req.appointment_id, req.start)
        record = await self._changeable(tx, found.id, now)
        await tx.set_appointment_status(record.id, "cancelled", now, req.reason, "caller")
        record.status, record.updated_at, record.changed_by = "cancelled", now, "caller"
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
        found = await self._owned(tx, session, user, req.appointment_id, req.start)
        old = await self._changeable(tx, found.id, now)
        start, service, staff = self._target(req.new_slot_id, req.new_start, old.service, req.staff)
        if req.new_slot_id is None and req.staff is None:
            staff = self._same_first(staff, old.resource)
        new = await self._move(tx, old, now, (start, service, staff), session.id)
        previous, appointment = self._appointment(old), self._appointment(new)
        return _Done(
            ModifyAppointmentResponse(appointment=appointment, previous=previous),
            f"Moved {mask_phone(user.phone)} from {previous.label} to {appointment.label}.",
        )

    @staticmethod
    def _same_first(staff: list[Resource], resource: str) -> list[Resource]:
        """A move with nobody named: the same person if they are free then, else anyone who
        gives the service."""
        same = [p for p in staff if p.id == resource]
        return same + [p for p in staff if p.id != resource]

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
        appointments = await tx.session_appointments(session.id)
        # Each booking is credited to the caller who made it (the identity may have changed).
        phones = {user.id: user.phone} if user else {}
        for user_id in {a.user_id for a in appointments} - phones.keys():
            other = await tx.get_user(user_id)
            if other is not None:
                phones[user_id] = other.phone
        summary = build_summary(
            self.rules,
            session,
            user,
            appointments,
            log,
            phones=phones,
            caller_name=self._user(user, session).name if user else None,
            preferences=[*session.preferences, *preferences],
            recap=recap or session.recap,
            now=now,
            cost=price(usage if usage is not None else session.usage, self.prices),
            region=self.default_region,
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
