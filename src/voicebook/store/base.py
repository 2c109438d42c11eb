"""The Store protocol: what the scheduling service needs from a database, and its records.

A store hands out transactions. Everything the service does for one request happens inside one
transaction, so a state change, its event row and its idempotency record commit together
(DESIGN §5).
The database itself guards the no-overlap invariant; `OverlapError` is how a store reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from voicebook.scheduling.availability import Interval
from voicebook.store.aggregates import CostlyCall, DayFigures, FailureCount

IdentityLevel = Literal["claimed", "verified", "trusted"]


class OverlapError(Exception):
    """The database refused a confirmed appointment that overlaps another one."""


class SchemaOutOfDate(Exception):
    """The database lacks migrations this version needs."""


@dataclass
class UserRecord:
    id: str
    phone: str
    name: str | None
    created_at: datetime
    updated_at: datetime


@dataclass
class SessionRecord:
    id: str
    state: Literal["connected", "active", "ended"]
    user_id: str | None
    last_event_id: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    summary: dict[str, Any] | None = None
    preferences: list[str] = field(default_factory=list)
    recap: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    identity_level: IdentityLevel | None = None
    """How far the caller bound to this session is proved (None: nobody identified yet)."""
    caller_name: str | None = None
    """The name the caller gave in this session (a claim never overwrites `users.name`)."""
    livekit_identity: str | None = None
    """The one participant identity this session's LiveKit tokens are minted for."""
    token_mints: int = 0


@dataclass
class AppointmentRecord:
    id: str
    user_id: str
    resource: str
    starts_at: datetime
    ends_at: datetime
    status: Literal["confirmed", "cancelled", "rescheduled"]
    name: str | None
    notes: str | None
    session_id: str | None
    created_at: datetime
    updated_at: datetime
    cancel_reason: str | None = None
    cancelled_at: datetime | None = None
    rescheduled_from: str | None = None
    service: str = "appointment"
    room: str | None = None
    """The room this appointment also holds, when its service needs one."""
    changed_by: Literal["caller", "operator"] | None = None
    """Who made it what it is: booked, cancelled or moved by the caller or by the business's
    operator (None: before migration 0010)."""
    changed_by_operator: str | None = None
    """The operator's account when one made the change (None: the service key or the shared
    console password, a caller, or before migration 0011)."""


@dataclass
class OperatorRecord:
    """A named console account: its sign-in name and the Argon2id hash of its password."""

    name: str
    password_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass
class BookedRecord:
    """An appointment with its caller's phone and stored name: the business's view of its day
    (the server masks the phone before anyone sees it)."""

    appointment: AppointmentRecord
    phone: str
    user_name: str | None


@dataclass
class SessionListing:
    """A session as the console's list of calls shows it: the session, its caller's phone and
    stored name (the server masks the phone), and its tool calls counted by (name, status)."""

    session: SessionRecord
    phone: str | None
    user_name: str | None
    tool_calls: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class EventRecord:
    session_id: str
    id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime
    wire: str | None = field(default=None, repr=False, compare=False)
    """The encoded envelope, cached: one event fans out to many sockets."""


@dataclass
class IdempotencyRecord:
    scope: str
    key: str
    request_hash: str
    outcome: Literal["ok", "error"] | None
    body: dict[str, Any] | None
    created_at: datetime


@dataclass
class CodeRecord:
    """A one-time verification code sent to `phone` for a session (the code itself is hashed)."""

    id: str
    session_id: str
    phone: str
    code_hash: str | None
    attempts: int
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None


@dataclass
class CallStart:
    """What a tool call needs first: the answer already stored under its key, or else the
    locked session and its identified caller."""

    previous: IdempotencyRecord | None
    session: SessionRecord | None
    user: UserRecord | None


class StoreTransaction(Protocol):
    """Queries and writes inside one open transaction."""

    async def begin_call(
        self, session_id: str, now: datetime, key: str | None, request_hash: str
    ) -> CallStart: ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def insert_session(self, session_id: str, now: datetime) -> SessionRecord: ...
    async def append_events(
        self,
        session: SessionRecord,
        events: Sequence[tuple[str, dict[str, Any]]],
        now: datetime,
        **fields: Any,
    ) -> list[EventRecord]: ...
    async def idle_sessions(self, before: datetime, limit: int = 100) -> list[str]: ...
    async def prune_idempotency(self, before: datetime) -> int: ...
    async def prune_ended_sessions(self, before: datetime, limit: int = 200) -> int: ...
    async def events_after(
        self, session_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]: ...
    async def tool_calls_after(
        self, session_id: str, after: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        """The session's `tool_call` events after event id `after`, oldest first: read from
        an index of tool calls alone, never the rest of the log."""
        ...

    async def get_user(self, user_id: str) -> UserRecord | None: ...
    async def upsert_user(
        self, phone: str, name: str | None, now: datetime, *, new_id: str
    ) -> tuple[UserRecord, bool]: ...
    async def busy_between(self, resource: str, window: Interval) -> list[Interval]: ...
    async def busy_for(
        self, resources: Sequence[str], window: Interval
    ) -> dict[str, list[Interval]]: ...
    async def insert_appointment(self, record: AppointmentRecord, blocked: Interval) -> None: ...
    async def get_appointment(
        self, appointment_id: str, *, lock: bool = False
    ) -> AppointmentRecord | None:
        """The appointment; `lock` holds its row until commit (Postgres `FOR UPDATE`; a SQLite
        writer runs alone anyway), so two changes of one appointment run one after the other."""
        ...

    async def find_appointment_at(
        self, user_id: str, start: datetime
    ) -> AppointmentRecord | None: ...
    async def list_appointments(
        self, user_id: str, *, since: datetime | None, include_cancelled: bool
    ) -> list[AppointmentRecord]: ...
    async def session_appointments(self, session_id: str) -> list[AppointmentRecord]: ...
    async def appointments_starting(
        self,
        window: Interval,
        *,
        resource: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[BookedRecord]:
        """Appointments of any status starting in `window` (of `resource`, as staff member or
        room, when given), ordered by start then id, after the (start, id) of `after`."""
        ...

    async def set_appointment_status(
        self,
        appointment_id: str,
        status: str,
        now: datetime,
        reason: str | None = None,
        by: Literal["caller", "operator"] = "caller",
        operator: str | None = None,
    ) -> None: ...
    async def complete_idempotency(
        self, scope: str, key: str, outcome: str, body: dict[str, Any]
    ) -> None: ...
    async def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None: ...
    async def set_user_name(self, user_id: str, name: str, now: datetime) -> None: ...
    async def insert_code(self, record: CodeRecord) -> None: ...
    async def latest_code(self, session_id: str, phone: str) -> CodeRecord | None: ...
    async def codes_sent_since(self, phone: str, since: datetime) -> int: ...
    async def update_code(
        self, code_id: str, attempts: int, verified_at: datetime | None
    ) -> None: ...

    # --- the console's accounts -----------------------------------------------------------------

    async def get_operator(self, name: str) -> OperatorRecord | None: ...
    async def any_operator(self) -> bool: ...
    async def list_operators(self) -> list[OperatorRecord]: ...
    async def insert_operator(self, record: OperatorRecord) -> bool:
        """False when an account of that name exists (it is left as it was)."""
        ...

    async def set_operator_password(self, name: str, password_hash: str, now: datetime) -> bool:
        """False when there is no account of that name."""
        ...

    async def delete_operator(self, name: str) -> bool: ...

    # --- the console's calls --------------------------------------------------------------------

    async def recent_sessions(
        self,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
        phone_ending: str | None = None,
        live: bool | None = None,
    ) -> list[SessionListing]:
        """Sessions of any state, newest first (by created_at, then id), after the (created_at,
        id) of `before`; each with its caller and its tool calls counted. `phone_ending`
        (digits): only those whose caller's number ends so; `live`: only open (True) or ended
        (False) ones."""
        ...

    async def session_listing(self, session_id: str) -> SessionListing | None:
        """One session as `recent_sessions` lists it (None: no such session)."""
        ...

    # --- the console's numbers (store/aggregates.py) -------------------------------------------

    async def day_figures(self, days: Sequence[Interval]) -> list[DayFigures]:
        """Calls, their cost, bookings and cancellations of each day (UTC bounds), in order."""
        ...

    async def tool_failures(self, window: Interval, limit: int = 100) -> list[FailureCount]:
        """Failed tool calls in `window` by error code and tool, most frequent first."""
        ...

    async def costliest_calls(self, window: Interval, limit: int = 5) -> list[CostlyCall]:
        """The priced calls started in `window` that cost most, dearest first."""
        ...


class Store(Protocol):
    """A database voicebook can run on (SQLite or Postgres)."""

    dialect: Literal["sqlite", "postgres"]
    display_url: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    def pool_stats(self) -> dict[str, int]:
        """Connection-pool figures for /metrics (psycopg_pool's names), or none."""
        ...

    def transaction(
        self, *, write: bool = True
    ) -> AbstractAsyncContextManager[StoreTransaction]: ...
