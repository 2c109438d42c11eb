"""The scheduling service: the seven tool operations (DESIGN §4) on a Store.

Each tool call is one transaction that (1) claims its idempotency key, (2) locks the session row,
(3) does the work, (4) appends its `tool_call` event and (5) records the answer under the key. A
domain failure rolls all of that back, then a second short transaction records the failure as an
event and under the key, so a retry returns the same answer and failed calls are visible too.
Committed events are handed to `publish` only after commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, NoReturn

from pydantic import ValidationError

from voicebook.models import (
    TOOL_REQUESTS,
    TOOL_RESPONSES,
    AgentReport,
    AgentReportResponse,
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
    Request,
    RetrieveAppointmentsRequest,
    RetrieveAppointmentsResponse,
    Slot,
    Summary,
    ToolCallEvent,
    User,
    WireModel,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.cost import Prices, merge_usage, price
from voicebook.scheduling.errors import (
    AlreadyCancelled,
    Closed,
    DomainError,
    IdempotencyConflict,
    InPast,
    InvalidInput,
    InvalidTime,
    NotFound,
    NotIdentified,
    SessionEnded,
    SessionNotFound,
    SlotTaken,
    TooFar,
    error_from_dict,
)
from voicebook.scheduling.ids import new_appointment_id, new_session_id, new_user_id
from voicebook.scheduling.phone import mask_phone, normalize_phone
from voicebook.scheduling.summary import build_summary
from voicebook.store.base import (
    AppointmentRecord,
    EventRecord,
    IdempotencyRecord,
    OverlapError,
    SessionRecord,
    Store,
    StoreTransaction,
    UserRecord,
)

log = logging.getLogger(__name__)
ALTERNATIVES = 3
"""How many next free slots a `slot_taken` error offers."""
FIRST_SPAN = timedelta(days=2)
"""How far ahead a slot search first looks before widening (see `_free`)."""
_TIME_FIELDS = frozenset({"start", "new_start", "date"})
Publisher = Callable[[Sequence[EventRecord]], Awaitable[None]]


def utc_now() -> datetime:
    """Now, in UTC, at the millisecond precision every store keeps."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class ToolOutcome:
    """A tool's answer, the events it committed, and whether it was replayed from the key store."""

    response: WireModel
    events: list[EventRecord] = field(default_factory=list)
    replayed: bool = False


@dataclass
class _Done:
    """What a tool handler hands back to the transaction wrapper."""

    response: WireModel
    detail: str
    after: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Events to append after the tool_call event."""
    session_fields: dict[str, Any] = field(default_factory=dict)
    """Session columns the tool changes (written with the events, in one batch)."""


class _Replay(Exception):
    """Raised inside the transaction to roll it back and answer from the idempotency record."""

    def __init__(self, outcome: str, body: dict[str, Any]) -> None:
        self.outcome, self.body = outcome, body


def parse_request(
    name: str, payload: dict[str, Any] | Request, model: type[Request] | None = None
) -> Request:
    """Validate a tool (or report) request; bad fields become a DomainError that can be spoken."""
    model = model or TOOL_REQUESTS.get(name)
    if model is None:
        raise NotFound(f"There is no tool called {name!r}.")
    if isinstance(payload, model):
        return payload
    data = payload.model_dump() if isinstance(payload, Request) else payload
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def validation_error(errors: Sequence[Any], skip: Sequence[str] = ()) -> DomainError:
    """The first validation problem as a sentence: `invalid_time` for times, else `invalid_input`.

    `skip` drops location prefixes such as FastAPI's "body"/"query".
    """
    first = errors[0] if errors else {"loc": (), "msg": "it could not be read"}
    loc = [str(part) for part in first.get("loc", ()) if str(part) not in skip]
    where = loc[0] if loc else ""
    if where in _TIME_FIELDS:
        return InvalidTime(
            f"I couldn't understand the {where.replace('_', ' ')}; please give a date and "
            "time like 2027-12-02T15:00."
        )
    problem = str(first.get("msg", "")).removeprefix("Value error, ").rstrip(".")
    subject = f"The {where.replace('_', ' ')}" if where else "The request"
    return InvalidInput(f"{subject} is not valid: {problem}.", field=where or None)


def request_hash(name: str, args: dict[str, Any]) -> str:
    """Fingerprint of a call, to tell a retry from a different request under the same key."""
    canonical = json.dumps([name, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def redact_args(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as events show them: phones masked, the session id and empty ones left out."""
    args = {k: v for k, v in arguments.items() if k != "session_id" and v is not None}
    if "phone" in args:
        digits = "".join(ch for ch in str(args["phone"]) if ch.isdigit())
        args["phone"] = mask_phone(digits) if digits else "***"
    return args


class SchedulingService:
    """The seven operations, sessions and summaries, with every rule enforced in one place."""

    def __init__(
        self,
        store: Store,
        rules: av.AvailabilityRules,
        *,
        default_region: str = "US",
        resource: str = "default",
        clock: Callable[[], datetime] = utc_now,
        publish: Publisher | None = None,
        prices: Prices | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.prices = prices or Prices()
        self.default_region = default_region
        self.resource = resource
        self.clock = clock
        self.publish = publish
        self._handlers: dict[str, Callable[..., Awaitable[_Done]]] = {
            "identify_user": self._identify_user,
            "fetch_slots": self._fetch_slots,
            "book_appointment": self._book_appointment,
            "retrieve_appointments": self._retrieve_appointments,
            "cancel_appointment": self._cancel_appointment,
            "modify_appointment": self._modify_appointment,
            "end_conversation": self._end_conversation,
        }

    # --- sessions -------------------------------------------------------------------------------

    async def start_session(self) -> SessionRecord:
        now = self.clock()
        async with self.store.transaction() as tx:
            session = await tx.insert_session(new_session_id(), now)
            events = await tx.append_events(
                session, [("status", {"session_id": session.id, "state": "connected"})], now
            )
        await self._publish(events)
        return session

    async def get_session(self, session_id: str) -> tuple[SessionRecord, UserRecord | None]:
        async with self.store.transaction(write=False) as tx:
            session = await tx.get_session(session_id)
            if session is None:
                raise SessionNotFound()
            user = await tx.get_user(session.user_id) if session.user_id else None
        return session, user

    async def session_events(
        self, session_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        async with self.store.transaction(write=False) as tx:
            if await tx.get_session(session_id) is None:
                raise SessionNotFound()
            return await tx.events_after(session_id, after, limit)

    async def end_session(self, session_id: str, reason: str = "ended") -> Summary:
        """End the session (page hang-up, agent hang-up, idle timeout); idempotent."""
        now = self.clock()
        async with self.store.transaction() as tx:
            start = await tx.begin_call(session_id, now, None, "")
            session, user = start.session, start.user
            if session is None:
                raise SessionNotFound()
            if session.state == "ended" and session.summary is not None:
                return Summary.model_validate(session.summary)
            summary, closing, fields = await self._close(tx, session, user, reason, now, [], None)
            events = await tx.append_events(session, closing, now, **fields)
        await self._publish(events)
        return summary

    async def report(
        self, report: AgentReport | dict[str, Any], idempotency_key: str | None = None
    ) -> AgentReportResponse:
        """Take the agent's transcript lines, usage and recap; `hangup` ends the session.

        Uses the tool calls' idempotency keys, so a retried report appends nothing twice.
        """
        request = parse_request("report", report, AgentReport)
        assert isinstance(request, AgentReport)
        now = self.clock()
        digest = request_hash("report", request.model_dump(mode="json"))
        try:
            async with self.store.transaction() as tx:
                start = await tx.begin_call(request.session_id, now, idempotency_key, digest)
                if start.previous is not None:
                    self._answer_from(start.previous, digest)
                session = self._open_session(start.session)
                items: list[tuple[str, dict[str, Any]]] = [
                    ("transcript", line.model_dump(mode="json")) for line in request.transcript
                ]
                fields: dict[str, Any] = {}
                if request.usage is not None:
                    fields["usage"] = merge_usage(
                        session.usage, request.usage.model_dump(exclude_none=True)
                    )
                if request.recap:
                    fields["recap"] = request.recap
                state = session.state
                if request.hangup:
                    _, closing, ended = await self._close(
                        tx,
                        session,
                        start.user,
                        "caller_hangup",
                        now,
                        [],
                        request.recap,
                        fields.get("usage"),
                    )
                    items += closing
                    fields.update(ended)
                    state = "ended"
                answer = AgentReportResponse(session_id=session.id, state=state, events=len(items))
                if idempotency_key:
                    await tx.complete_idempotency(
                        session.id, idempotency_key, "ok", answer.model_dump(mode="json")
                    )
                events = await tx.append_events(session, items, now, **fields)
        except _Replay as replay:
            if replay.outcome == "error":
                raise error_from_dict(replay.body) from None
            return AgentReportResponse.model_validate(replay.body)
        await self._publish(events)
        return answer

    # --- tools ----------------------------------------------------------------------------------

    async def run_tool(
        self,
        name: str,
        payload: dict[str, Any] | Request,
        idempotency_key: str | None = None,
    ) -> ToolOutcome:
        """Run one tool call; raises the DomainError that explains a refusal."""
        started = time.perf_counter()
        try:
            request = parse_request(name, payload)
        except DomainError as error:
            # A malformed call is still a failed tool call on its session's log.
            raw = payload if isinstance(payload, dict) else payload.model_dump(mode="json")
            session_id = raw.get("session_id")
            if name in TOOL_REQUESTS and isinstance(session_id, str):
                digest = request_hash(name, raw)
                await self._record_failure(
                    name, session_id, raw, idempotency_key, digest, error, started
                )
            raise
        now = self.clock()
        args = request.model_dump(mode="json")
        digest = request_hash(name, args)
        try:
            async with self.store.transaction() as tx:
                start = await tx.begin_call(request.session_id, now, idempotency_key, digest)
                if start.previous is not None:
                    self._answer_from(start.previous, digest)
                session = self._open_session(start.session)
                done = await self._handlers[name](tx, session, start.user, request, now)
                result = done.response.model_dump(mode="json")
                if idempotency_key:  # deferred: written with the events below
                    await tx.complete_idempotency(request.session_id, idempotency_key, "ok", result)
                events = await self._append_tool_events(
                    tx, session, name, request, idempotency_key, now, started, done, result
                )
        except _Replay as replay:
            return self._replayed(name, replay)
        except DomainError as error:
            await self._record_failure(
                name, request.session_id, args, idempotency_key, digest, error, started
            )
            raise
        await self._publish(events)
        return ToolOutcome(done.response, events)

    @staticmethod
    def _answer_from(existing: IdempotencyRecord, digest: str) -> NoReturn:
        """The key was used before: replay its answer, or refuse a different request."""
        if existing.request_hash != digest:
            raise IdempotencyConflict()
        if existing.outcome is None or existing.body is None:  # claimed, never completed
            raise IdempotencyConflict("That request is still being processed; try again shortly.")
        raise _Replay(existing.outcome, existing.body)

    @staticmethod
    def _replayed(name: str, replay: _Replay) -> ToolOutcome:
        if replay.outcome == "error":
            error = error_from_dict(replay.body)
            error.replayed = True  # type: ignore[attr-defined]
            raise error
        response = TOOL_RESPONSES[name].model_validate(replay.body)
        return ToolOutcome(response, [], replayed=True)

    @staticmethod
    def _open_session(session: SessionRecord | None) -> SessionRecord:
        if session is None:
            raise SessionNotFound()
        if session.state == "ended":
            raise SessionEnded()
        return session

    async def _append_tool_events(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        name: str,
        request: Request,
        key: str | None,
        now: datetime,
        started: float,
        done: _Done,
        result: dict[str, Any],
    ) -> list[EventRecord]:
        items: list[tuple[str, dict[str, Any]]] = []
        fields: dict[str, Any] = {}
        if session.state == "connected":
            fields["state"] = "active"
            items.append(("status", {"session_id": session.id, "state": "active"}))
        call = ToolCallEvent(
            id=key or f"call_{session.last_event_id + len(items) + 1}",
            name=name,
            status="completed",
            detail=done.detail,
            timestamp=now,
            args=redact_args(request.model_dump(mode="json")),
            result=result,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        items.append(("tool_call", call.model_dump(mode="json")))
        items.extend(done.after)
        return await tx.append_events(session, items, now, **fields, **done.session_fields)

    async def _record_failure(
        self,
        name: str,
        session_id: str,
        args: dict[str, Any],
        key: str | None,
        digest: str,
        error: DomainError,
        started: float,
    ) -> None:
        """Log a refused call as a failed tool_call event and remember it under its key."""
        if isinstance(error, (SessionNotFound, SessionEnded, IdempotencyConflict)):
            return  # nothing to attach an event to, or the key belongs to another answer
        now = self.clock()
        async with self.store.transaction() as tx:
            start = await tx.begin_call(session_id, now, key, digest)
            session = start.session
            if start.previous is not None:
                return  # a concurrent duplicate recorded its own answer first
            if session is None or session.state == "ended":
                return
            call = ToolCallEvent(
                id=key or f"call_{session.last_event_id + 1}",
                name=name,
                status="failed",
                detail=f"{name.replace('_', ' ').capitalize()} failed: {error.message}",
                timestamp=now,
                args=redact_args(args),
                error=error.to_dict(),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            events = await tx.append_events(
                session, [("tool_call", call.model_dump(mode="json"))], now
            )
            if key:
                await tx.complete_idempotency(session_id, key, "error", error.to_dict())
        await self._publish(events)

    async def _publish(self, events: Sequence[EventRecord]) -> None:
        """Hand committed events to the bus. Best effort: the change is already committed and
        the log is the truth, so a bus failure must not turn a success into an error; subscribers
        catch up from the log."""
        if self.publish is None or not events:
            return
        try:
            await self.publish(events)
        except Exception:
            log.warning("publishing %d event(s) failed; subscribers will catch up", len(events))

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
