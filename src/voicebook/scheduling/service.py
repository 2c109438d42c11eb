"""The scheduling service: the seven tool operations (DESIGN §4) on a Store.

Each tool call is one transaction that (1) claims its idempotency key, (2) locks the session row,
(3) does the work, (4) appends its `tool_call` event and (5) records the answer under the key. A
domain failure rolls all of that back, then a second short transaction records the failure as an
event and under the key, so a retry returns the same answer and failed calls are visible too.
Committed events are handed to `publish` only after commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn, TypeVar

from voicebook.models import (
    TOOL_REQUESTS,
    TOOL_RESPONSES,
    AgentReport,
    AgentReportResponse,
    Request,
    Summary,
    ToolCallEvent,
    WireModel,
)
from voicebook.scheduling import availability as av
from voicebook.scheduling.cost import Prices, merge_usage
from voicebook.scheduling.errors import (
    DomainError,
    IdempotencyConflict,
    SessionEnded,
    SessionNotFound,
    StoreUnavailable,
    error_from_dict,
)
from voicebook.scheduling.ids import new_session_id
from voicebook.scheduling.requests import parse_request, redact_args, request_hash
from voicebook.scheduling.tools import ToolHandlers, _Done
from voicebook.store.base import (
    EventRecord,
    IdempotencyRecord,
    SessionRecord,
    Store,
    StoreTransaction,
    UserRecord,
)

log = logging.getLogger(__name__)
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


M = TypeVar("M", bound=WireModel)


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


class SchedulingService(ToolHandlers):
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
            # A malformed call is still a failed tool call on its session's log.
            raw = payload if isinstance(payload, dict) else payload.model_dump(mode="json")
            session_id = raw.get("session_id")
            if name in TOOL_REQUESTS and isinstance(session_id, str) and "\x00" not in session_id:
                digest = request_hash(name, raw)
                previous = await self._record_failure(
                    name, session_id, raw, idempotency_key, digest, error, started
                )
                if previous is not None:  # a retry: the first answer, or a key conflict
                    return self._from_previous(name, previous, digest)
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
            previous = await self._record_failure(
                name, request.session_id, args, idempotency_key, digest, error, started
            )
            if previous is not None:  # a concurrent duplicate answered first
                return self._from_previous(name, previous, digest)
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
