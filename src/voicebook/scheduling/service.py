"""The scheduling service: the eight tool operations (DESIGN §4) on a Store.

Each tool call is one transaction that (1) claims its idempotency key, (2) locks the session row,
(3) does the work, (4) appends its `tool_call` event and (5) records the answer under the key. A
domain failure rolls all of that back, then a second short transaction records the failure as an
event and under the key, so a retry returns the same answer and failed calls are visible too.
Committed events are handed to `publish` only after commit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn, TypeVar

from voicebook.models import (
    TOOL_REQUESTS,
    TOOL_RESPONSES,
    AgentReport,
    AgentReportResponse,
    CallerRequest,
    CallerResponse,
    Request,
    Summary,
    ToolCallEvent,
    User,
    VerifyCallerRequest,
    WireModel,
    unstorable_text,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Business, single_calendar
from voicebook.scheduling.cost import Prices, merge_usage
from voicebook.scheduling.errors import (
    DomainError,
    IdempotencyConflict,
    NotIdentified,
    SessionEnded,
    SessionNotFound,
    StoreUnavailable,
    TooManyCodes,
    VerificationUnavailable,
    error_from_dict,
)
from voicebook.scheduling.identity import VerificationPolicy, Verifier, may_see_history, new_code
from voicebook.scheduling.ids import new_session_id, new_user_id
from voicebook.scheduling.operator import OperatorActions
from voicebook.scheduling.phone import mask_phones, normalize_phone
from voicebook.scheduling.requests import loggable, parse_request, redact_args, request_hash
from voicebook.scheduling.tools import VerifyPlan, _Done
from voicebook.store.base import (
    EventRecord,
    IdempotencyRecord,
    SessionRecord,
    Store,
    StoreTransaction,
    UserRecord,
)
from voicebook.store.retry import retrying

log = logging.getLogger(__name__)
Publisher = Callable[[Sequence[EventRecord]], Awaitable[None]]


def _failure_detail(name: str, error: DomainError) -> str:
    """The one sentence a failed tool call shows: which tool, and the refusal's own sentence."""
    return f"{name.replace('_', ' ').capitalize()} failed: {error.message}"


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


M = TypeVar("M", bound=WireModel)
T = TypeVar("T")
SEND_WINDOW = timedelta(hours=1)
"""The window of the per-number send limit (VerificationPolicy.sends_per_hour)."""
VERIFIER_TIMEOUT_S = 5.0
"""How long a code delivery or a hosted check may take before the caller is told it failed."""


class _Replay(Exception):
    """Raised inside the transaction to roll it back and answer from the idempotency record."""

    def __init__(self, outcome: str, body: dict[str, Any]) -> None:
        self.outcome, self.body = outcome, body

    def answer(self, model: type[M]) -> M:
        """The stored answer as `model`, or the stored refusal raised again (marked replayed)."""
        if self.outcome == "error":
            error = error_from_dict(self.body)
            error.replayed = True  # type: ignore[attr-defined]
            raise error
        return model.model_validate(self.body)


class SchedulingService(OperatorActions):
    """The eight operations, sessions and summaries, with every rule enforced in one place
    (the operator's changes too: operator.py)."""

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
        verifier: Verifier | None = None,
        policy: VerificationPolicy | None = None,
        business: Business | None = None,
    ) -> None:
        self.store = store
        self.business = business or single_calendar(rules, resource)
        self.verifier = verifier
        self.policy = policy or VerificationPolicy()
        self.rules = self.business.rules
        self.prices = prices or Prices()
        self.default_region = default_region
        self.clock = clock
        self.publish = publish
        self._handlers: dict[str, Callable[..., Awaitable[_Done]]] = {
            "identify_user": self._identify_user,
            "verify_caller": self._verify_caller,
            "fetch_slots": self._fetch_slots,
            "book_appointment": self._book_appointment,
            "retrieve_appointments": self._retrieve_appointments,
            "cancel_appointment": self._cancel_appointment,
            "modify_appointment": self._modify_appointment,
            "end_conversation": self._end_conversation,
        }

    # --- sessions -------------------------------------------------------------------------------

    async def start_session(self, caller: CallerRequest | None = None) -> SessionRecord:
        """A new session; with `caller` (a signed-in back-end's user) it starts trusted."""
        now = self.clock()
        phone = normalize_phone(caller.phone, self.default_region) if caller else None
        async with self.store.transaction() as tx:
            session = await tx.insert_session(new_session_id(), now)
            items: list[tuple[str, dict[str, Any]]] = [
                ("status", {"session_id": session.id, "state": "connected"})
            ]
            fields: dict[str, Any] = {}
            if phone is not None:
                _, _, fields, event = await self._trust(tx, session, phone, caller.name, now)
                items.append(event)
            events = await tx.append_events(session, items, now, **fields)
        await self._publish(events)
        return session

    def caller_view(self, session: SessionRecord, user: UserRecord | None) -> User | None:
        """The session's caller as a person may see them (masked; the stored name only once
        the number is proved)."""
        return self._user(user, session) if user is not None else None

    async def attest_caller(self, session_id: str, caller: CallerRequest) -> CallerResponse:
        """Bind a caller whose number the line vouches for (the SIP caller id): trusted."""
        now = self.clock()
        phone = normalize_phone(caller.phone, self.default_region)
        async with self.store.transaction() as tx:
            session = self._open_session((await tx.begin_call(session_id, now, None, "")).session)
            user, returning, fields, event = await self._trust(tx, session, phone, caller.name, now)
            events = await tx.append_events(session, [event], now, **fields)
        await self._publish(events)
        return CallerResponse(
            session_id=session.id,
            user=self._user(user, session),
            identity_level="trusted",
            returning=returning,
        )

    async def _trust(
        self,
        tx: StoreTransaction,
        session: SessionRecord,
        phone: str,
        name: str | None,
        now: datetime,
    ) -> tuple[UserRecord, bool, dict[str, Any], tuple[str, dict[str, Any]]]:
        """Make `phone` the session's trusted caller: (user, returning, session fields, event).

        The event is a completed `attest_caller` tool call, so the page shows who is calling.
        """
        user, returning = await tx.upsert_user(phone, name, now, new_id=new_user_id())
        session.user_id, session.identity_level = user.id, "trusted"
        session.caller_name = name
        shown = self._user(user, session)
        call = ToolCallEvent(
            id="attest_" + secrets.token_hex(6),
            name="attest_caller",
            status="completed",
            detail=f"The line identified {'returning' if returning else 'new'} caller "
            f"{shown.phone_masked}" + (f" ({shown.name})." if shown.name else "."),
            timestamp=now,
            args={"phone": shown.phone_masked},
            result={"user": shown.model_dump(mode="json"), "identity_level": "trusted"},
        )
        fields = {"user_id": user.id, "identity_level": "trusted", "caller_name": name}
        return user, returning, fields, ("tool_call", call.model_dump(mode="json"))

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

    async def claim_livekit_identity(
        self, session_id: str, identity: str | None, limit: int
    ) -> str:
        """Count one LiveKit token for the session and return the identity it is for (DESIGN §3:
        one identity per session, a bounded number of mints, none after the end).

        The first token fixes the identity (`identity`, or a generated one); later requests get
        that one, and another identity is `IdentityMismatch`. Beyond `limit` tokens:
        `TooManyTokens`. The session row is locked, so concurrent requests count exactly.
        """
        from voicebook.scheduling.errors import IdentityMismatch, TooManyTokens
        from voicebook.scheduling.ids import new_livekit_identity

        now = self.clock()
        async with self.store.transaction() as tx:
            session = self._open_session((await tx.begin_call(session_id, now, None, "")).session)
            fixed = session.livekit_identity
            if fixed and identity and identity != fixed:
                raise IdentityMismatch()
            if session.token_mints >= limit:
                raise TooManyTokens(limit=limit)
            who = fixed or identity or new_livekit_identity()
            await tx.append_events(
                session, [], now, livekit_identity=who, token_mints=session.token_mints + 1
            )
        return who

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
                    ("transcript", mask_phones(line.model_dump(mode="json"), self.default_region))
                    for line in request.transcript
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
            return replay.answer(AgentReportResponse)
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
            raw = payload if isinstance(payload, dict) else payload.model_dump(mode="json")
            return await self.refuse_malformed(name, raw, idempotency_key, error, started)
        args = request.model_dump(mode="json")
        digest = request_hash(name, args)
        try:
            handler = self._handlers[name]
            if isinstance(request, VerifyCallerRequest):
                plan = await self._prepare_verify(request, idempotency_key)
                handler = functools.partial(self._verify_caller, plan=plan)
            now = self.clock()
            # A deadlock or serialization failure rolls the transaction back: run all of it again.
            async for attempt in retrying():
                async with attempt, self.store.transaction() as tx:
                    start = await tx.begin_call(request.session_id, now, idempotency_key, digest)
                    if start.previous is not None:
                        self._answer_from(start.previous, digest)
                    session = self._open_session(start.session)
                    done = await handler(tx, session, start.user, request, now)
                    if done.error is not None:
                        result = done.error.to_dict()
                        outcome = "error"
                    else:
                        assert done.response is not None
                        result, outcome = done.response.model_dump(mode="json"), "ok"
                    if idempotency_key:  # deferred: written with the events below
                        await tx.complete_idempotency(
                            request.session_id, idempotency_key, outcome, result
                        )
                    events = await self._append_tool_events(
                        tx, session, name, request, idempotency_key, now, started, done, result
                    )
        except _Replay as replay:
            return self._replayed(name, replay)
        except DomainError as error:
            previous = await self._record_failure(
                name, request.session_id, args, idempotency_key, digest, error, started
            )
            if previous is not None:  # a concurrent duplicate answered first
                return self._from_previous(name, previous, digest)
            raise
        await self._publish(events)
        if done.error is not None:
            raise done.error
        assert done.response is not None
        return ToolOutcome(done.response, events)

    async def refuse_malformed(
        self,
        name: str,
        raw: Any,
        idempotency_key: str | None,
        error: DomainError,
        started: float,
    ) -> ToolOutcome:
        """Refuse a tool call whose arguments did not validate (`raw` as sent) with `error`.

        A malformed call is still a failed tool call on its session's log (its arguments kept
        only as far as `loggable` allows); a retry of one already recorded gets its first answer.
        """
        args = loggable(raw) if isinstance(raw, dict) else {}
        session_id = raw.get("session_id") if isinstance(raw, dict) else None
        named = isinstance(session_id, str) and not unstorable_text(session_id)
        if named and name in TOOL_REQUESTS:
            digest = request_hash(name, args)
            previous = await self._record_failure(
                name, session_id, args, idempotency_key, digest, error, started
            )
            if previous is not None:  # a retry: the first answer, or a key conflict
                return self._from_previous(name, previous, digest)
        raise error

    async def _prepare_verify(
        self, request: VerifyCallerRequest, key: str | None
    ) -> VerifyPlan | None:
        """The part of `verify_caller` that talks to the outside: send a code, or ask a hosted
        verifier about one. It runs before the tool's transaction, so no lock is held while
        a provider answers; None when there is nothing to do (a retry, an already proved
        caller: the transaction then answers)."""
        now = self.clock()
        async with self.store.transaction(write=False) as tx:
            if key and await tx.idempotency_record(request.session_id, key) is not None:
                return None
            session = self._open_session(await tx.get_session(request.session_id))
            user = await tx.get_user(session.user_id) if session.user_id else None
            if user is None:
                raise NotIdentified()
            if may_see_history(session.identity_level, self.policy):
                return None
            if request.code is None:
                sent = await tx.codes_sent_since(user.phone, now - SEND_WINDOW)
                if sent >= self.policy.sends_per_hour:
                    raise TooManyCodes()
            else:
                self.check_usable(await tx.latest_code(session.id, user.phone), now)
        if self.verifier is None:
            raise VerificationUnavailable()
        if request.code is None:
            code = None if self.verifier.hosted else new_code()
            expires_at = now + self.policy.lifetime
            await self._verifier_call(self.verifier.send(user.phone, code, expires_at))
            return VerifyPlan(user.phone, code=code, expires_at=expires_at)
        if self.verifier.hosted:
            approved = await self._verifier_call(self.verifier.check(user.phone, request.code))
            return VerifyPlan(user.phone, approved=bool(approved))
        return VerifyPlan(user.phone)

    @staticmethod
    async def _verifier_call(call: Awaitable[T]) -> T:
        """A provider call, bounded; any failure is `verification_unavailable` (logged without
        the number or the code)."""
        try:
            return await asyncio.wait_for(call, VERIFIER_TIMEOUT_S)
        except Exception as exc:
            log.warning("verification provider failed: %s", type(exc).__name__)
            raise VerificationUnavailable() from None

    @staticmethod
    def _answer_from(existing: IdempotencyRecord, digest: str) -> NoReturn:
        """The key was used before: replay its answer, or refuse a different request."""
        if existing.request_hash != digest:
            raise IdempotencyConflict()
        if existing.outcome is None or existing.body is None:  # claimed, never completed
            raise IdempotencyConflict("That request is still being processed; try again shortly.")
        raise _Replay(existing.outcome, existing.body)

    def _from_previous(self, name: str, previous: IdempotencyRecord, digest: str) -> ToolOutcome:
        try:
            self._answer_from(previous, digest)
        except _Replay as replay:
            return self._replayed(name, replay)

    @staticmethod
    def _replayed(name: str, replay: _Replay) -> ToolOutcome:
        return ToolOutcome(replay.answer(TOOL_RESPONSES[name]), [], replayed=True)

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
            # `active` lives in GET /session/{id} only: as an event the page knows `connected`
            # and `ended`, and shows anything else as "not connected" (DESIGN §3).
            fields["state"] = "active"
        failed = done.error is not None
        call = ToolCallEvent(
            id=key or f"call_{session.last_event_id + len(items) + 1}",
            name=name,
            status="failed" if failed else "completed",
            detail=mask_phones(
                _failure_detail(name, done.error) if done.error else done.detail,
                self.default_region,
            ),
            timestamp=now,
            args=redact_args(request.model_dump(mode="json"), self.default_region),
            result=None if failed else mask_phones(result, self.default_region),
            error=mask_phones(result, self.default_region) if failed else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        items.append(("tool_call", call.model_dump(mode="json")))
        items.extend(done.after)
        fields.update(done.session_fields)  # a tool's own state (ended) wins over "active"
        return await tx.append_events(session, items, now, **fields)

    async def _record_failure(
        self,
        name: str,
        session_id: str,
        args: dict[str, Any],
        key: str | None,
        digest: str,
        error: DomainError,
        started: float,
    ) -> IdempotencyRecord | None:
        """Log a refused call as a failed tool_call event and remember it under its key.

        Returns the record already stored under the key, if any: then this call is a retry (or a
        concurrent duplicate) and must be answered from it instead.
        """
        if isinstance(error, (SessionNotFound, SessionEnded, IdempotencyConflict)):
            return None  # nothing to attach an event to, or the key belongs to another answer
        if isinstance(error, StoreUnavailable):
            return None  # not an answer: the retry must run for real (and the store is away)
        now = self.clock()
        async with self.store.transaction() as tx:
            start = await tx.begin_call(session_id, now, key, digest)
            session = start.session
            if start.previous is not None:
                return start.previous  # the key already has an answer
            if session is None or session.state == "ended":
                return None
            call = ToolCallEvent(
                id=key or f"call_{session.last_event_id + 1}",
                name=name,
                status="failed",
                detail=mask_phones(
                    _failure_detail(name, error),
                    self.default_region,
                ),
                timestamp=now,
                args=redact_args(args, self.default_region),
                error=mask_phones(error.to_dict(), self.default_region),
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
