"""The one implementation of `StoreTransaction`, shared by SQLite and Postgres.

The SQL below is written once in the common subset of both dialects with `:name` placeholders. A
`Dialect` adapts what differs — placeholder style, how instants and JSON are stored, row locking and
how the overlap refusal surfaces — so each query and rule exists in exactly one place.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from voicebook.scheduling.availability import Interval
from voicebook.store.aggregates import AggregateQueries
from voicebook.store.base import (
    AppointmentRecord,
    BookedRecord,
    CallStart,
    CodeRecord,
    EventRecord,
    IdempotencyRecord,
    OperatorRecord,
    OverlapError,
    SessionListing,
    SessionRecord,
    UserRecord,
)

Statement = tuple[str, dict[str, Any]]
"""One statement in the driver's form (placeholders and encoded parameters), ready to send."""

TIMESTAMP_COLUMNS = frozenset(
    {
        "starts_at",
        "ends_at",
        "created_at",
        "updated_at",
        "ended_at",
        "cancelled_at",
        "expires_at",
        "verified_at",
        "blocked_from",
        "blocked_until",
    }
)
JSON_COLUMNS = frozenset({"summary", "preferences", "payload", "body", "usage"})
MAX_BLOCKED = timedelta(days=2)
"""Upper bound of a blocked span (a day-long appointment and its buffers): lets overlap queries
use a bounded index range scan (the SQLite triggers assume the same bound)."""

_SESSION_FIELDS = frozenset(
    {
        "state",
        "user_id",
        "ended_at",
        "end_reason",
        "summary",
        "preferences",
        "recap",
        "usage",
        "identity_level",
        "caller_name",
        "livekit_identity",
        "token_mints",
    }
)
_EVENT_COLUMNS = ("session_id", "id", "type", "payload", "created_at")
R = TypeVar("R")


class Dialect(ABC):
    """What differs between the databases, and nothing else."""

    name: str
    lock_clause: str = ""
    _NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")

    def sql(self, text: str) -> str:
        return text

    @abstractmethod
    def encode(self, value: Any, column: str | None = None) -> Any: ...

    @abstractmethod
    def decode(self, column: str, value: Any) -> Any: ...

    @abstractmethod
    def is_overlap(self, exc: BaseException) -> bool: ...

    def json_text(self, column: str, key: str, *inner: str) -> str:
        """SQL for the text at `key` of the JSON object in `column` (at `key`, then each of
        `inner` in turn, for a nested one: `("summary", "cost", "total")`); NULL when absent."""
        *outer, last = key, *inner
        return column + "".join(f" -> '{k}'" for k in outer) + f" ->> '{last}'"


class Connection(ABC):
    """A database connection inside an open transaction."""

    @abstractmethod
    async def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def execute(self, sql: str, params: dict[str, Any]) -> int: ...

    @abstractmethod
    async def batch(self, statements: list[Statement]) -> None:
        """Run writes whose results are not needed, in as few round trips as the driver allows."""

    @abstractmethod
    async def fetch_many(self, statements: list[Statement]) -> list[list[dict[str, Any]]]:
        """Run statements in order, in as few round trips as the driver allows; rows of each."""

    @abstractmethod
    async def execute_many(self, statements: list[Statement]) -> list[int]:
        """Run statements in order, in as few round trips as the driver allows; the row count
        of each."""


def _row(cls: type[R], dialect: Dialect, row: dict[str, Any]) -> R:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: dialect.decode(k, v) for k, v in row.items() if k in names})


_CLAIM_SQL = (
    "INSERT INTO idempotency_keys (scope, key, request_hash, created_at)"
    " VALUES (:scope, :key, :hash, :now) ON CONFLICT (scope, key) DO NOTHING RETURNING key"
)
_USER_OF_SESSION_SQL = (
    "SELECT users.* FROM users JOIN sessions ON sessions.user_id = users.id WHERE sessions.id = :id"
)


class SqlTransaction(AggregateQueries):
    """`StoreTransaction` over a `Connection` and a `Dialect`.

    Writes whose outcome nothing in the transaction reads back (the idempotency answer, the
    events and the session's counters) are deferred: they go first in the transaction's next
    round trip, whatever it is, so every later statement sees them, in order; the last ones go
    with COMMIT (`take_deferred`). A round trip costs the server more CPU than the statements
    in it: a booking on Postgres takes 6 (its BEGIN in the first) instead of 9.
    """

    def __init__(
        self, connection: Connection, dialect: Dialect, deferred: list[Statement] | None = None
    ) -> None:
        """`deferred`: statements to send first (Postgres: the BEGIN, with the first round
        trip)."""
        self._conn = connection
        self._dialect = dialect
        self._deferred: list[Statement] = list(deferred or [])

    async def flush(self) -> None:
        """Send deferred writes (a store that cannot send them with its COMMIT calls this)."""
        if self._deferred:
            await self._conn.batch(self.take_deferred())

    def take_deferred(self, *then: Statement) -> list[Statement]:
        """The deferred writes, followed by `then`, handed over to be sent now."""
        pending, self._deferred = self._deferred, []
        return [*pending, *then]

    def _statement(self, sql: str, **params: Any) -> Statement:
        """One statement in the driver's form, for `Connection.batch`."""
        return self._dialect.sql(sql), self._params(params)

    def _defer(self, sql: str, **params: Any) -> None:
        self._deferred.append(self._statement(sql, **params))

    async def begin_call(
        self, session_id: str, now: datetime, key: str | None, request_hash: str
    ) -> CallStart:
        """Claim the idempotency key, lock the session row and read its caller: one round trip.

        When the key was used before, `previous` is that request's record; the caller answers
        from it and ignores the rest. On Postgres a concurrent claim of the same key waits at the
        INSERT until the first transaction ends, so a duplicate never runs beside the original.
        """
        statements: list[tuple[str, dict[str, Any]]] = []
        if key:
            statements.append(
                (_CLAIM_SQL, {"scope": session_id, "key": key, "hash": request_hash, "now": now})
            )
        lock = self._dialect.lock_clause
        statements.append(("SELECT * FROM sessions WHERE id = :id" + lock, {"id": session_id}))
        statements.append((_USER_OF_SESSION_SQL, {"id": session_id}))
        results = await self._fetch_many(
            [(self._dialect.sql(sql), self._params(p)) for sql, p in statements]
        )
        *claim, session_rows, user_rows = results
        previous = None
        if key and not claim[0]:
            previous = await self.idempotency_record(session_id, key)
        return CallStart(
            previous=previous,
            session=_row(SessionRecord, self._dialect, session_rows[0]) if session_rows else None,
            user=_row(UserRecord, self._dialect, user_rows[0]) if user_rows else None,
        )

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: self._dialect.encode(v, k) for k, v in params.items()}

    async def _fetch(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        statement = self._statement(sql, **params)
        if not self._deferred:
            return await self._conn.fetch(*statement)
        return (await self._conn.fetch_many(self.take_deferred(statement)))[-1]

    async def _fetch_many(self, statements: list[Statement]) -> list[list[dict[str, Any]]]:
        """The rows of each of `statements`, sent after the deferred writes, in one round trip."""
        sent = self.take_deferred(*statements)
        return (await self._conn.fetch_many(sent))[len(sent) - len(statements) :]

    async def _one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        rows = await self._fetch(sql, **params)
        return rows[0] if rows else None

    async def _execute(self, sql: str, **params: Any) -> int:
        statement = self._statement(sql, **params)
        if not self._deferred:
            return await self._conn.execute(*statement)
        return (await self._conn.execute_many(self.take_deferred(statement)))[-1]

    async def _execute_many(self, statements: list[Statement]) -> list[int]:
        """The row count of each of `statements`, sent after the deferred writes, in one round
        trip."""
        sent = self.take_deferred(*statements)
        return (await self._conn.execute_many(sent))[len(sent) - len(statements) :]

    # --- sessions and events ------------------------------------------------------------------

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, unlocked (writers lock it through `begin_call`)."""
        row = await self._one("SELECT * FROM sessions WHERE id = :id", id=session_id)
        return _row(SessionRecord, self._dialect, row) if row else None

    async def insert_session(self, session_id: str, now: datetime) -> SessionRecord:
        await self._execute(
            "INSERT INTO sessions (id, state, last_event_id, created_at, updated_at, preferences)"
            " VALUES (:id, 'connected', 0, :now, :now, :preferences)",
            id=session_id,
            now=now,
            preferences=[],
        )
        return SessionRecord(session_id, "connected", None, 0, now, now)

    async def append_events(
        self,
        session: SessionRecord,
        events: Sequence[tuple[str, dict[str, Any]]],
        now: datetime,
        **fields: Any,
    ) -> list[EventRecord]:
        """Append events to the session's log and apply session field changes (deferred: sent
        with the next round trip, at the latest with COMMIT).

        Ids continue from `session.last_event_id`, so the caller must hold the session row lock
        (taken by `begin_call` in this transaction); that lock is what orders appends.
        """
        unknown = set(fields) - _SESSION_FIELDS
        if unknown:
            raise ValueError(f"not session fields: {sorted(unknown)}")
        records = [
            EventRecord(session.id, session.last_event_id + i, event_type, payload, now)
            for i, (event_type, payload) in enumerate(events, start=1)
        ]
        statements = []
        if records:
            params: dict[str, Any] = {}
            rows = []
            for n, record in enumerate(records):
                for column in _EVENT_COLUMNS:
                    params[f"{column}_{n}"] = self._dialect.encode(getattr(record, column), column)
                rows.append("(" + ", ".join(f":{c}_{n}" for c in _EVENT_COLUMNS) + ")")
            statements.append(
                (
                    f"INSERT INTO session_events ({', '.join(_EVENT_COLUMNS)}) VALUES "
                    + ", ".join(rows),
                    params,
                )
            )
        last = records[-1].id if records else session.last_event_id
        values = {"last_event_id": last, "updated_at": now, **fields}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        statements.append(
            (f"UPDATE sessions SET {assignments} WHERE id = :id", {"id": session.id, **values})
        )
        self._deferred += [(self._dialect.sql(sql), self._params(p)) for sql, p in statements]
        session.last_event_id = last
        return records

    async def idle_sessions(self, before: datetime, limit: int = 100) -> list[str]:
        """Open sessions with no activity since `before`, oldest first."""
        rows = await self._fetch(
            "SELECT id FROM sessions WHERE state <> 'ended' AND updated_at < :before"
            " ORDER BY updated_at LIMIT :limit",
            before=before,
            limit=limit,
        )
        return [row["id"] for row in rows]

    async def prune_idempotency(self, before: datetime) -> int:
        """Forget idempotency keys older than `before`; returns how many."""
        return await self._execute(
            "DELETE FROM idempotency_keys WHERE created_at < :before", before=before
        )

    async def prune_ended_sessions(self, before: datetime, limit: int = 200) -> int:
        """Delete up to `limit` sessions that ended before `before` (retention, DESIGN §5), oldest
        first, with their events and transcripts, verification codes and idempotency keys; their
        appointments stay, no longer linked to a session. Returns how many sessions went.

        One batch: callers repeat it, one transaction each, until it returns less than `limit`.
        The rows are locked first (Postgres), so a concurrent pruner waits and then skips them.
        """
        rows = await self._fetch(
            "SELECT id FROM sessions WHERE state = 'ended' AND ended_at < :before"
            " ORDER BY ended_at LIMIT :limit" + self._dialect.lock_clause,
            before=before,
            limit=limit,
        )
        ids = [row["id"] for row in rows]
        if not ids:
            return 0
        params = {f"id_{n}": session_id for n, session_id in enumerate(ids)}
        listed = ", ".join(f":{name}" for name in params)
        statements = [
            f"UPDATE appointments SET session_id = NULL WHERE session_id IN ({listed})",
            f"DELETE FROM idempotency_keys WHERE scope IN ({listed})",
            f"DELETE FROM verification_codes WHERE session_id IN ({listed})",
            f"DELETE FROM session_events WHERE session_id IN ({listed})",
        ]
        deletes = [(self._dialect.sql(sql), self._params(params)) for sql in statements]
        await self._conn.batch(self.take_deferred(*deletes))
        return await self._execute(
            f"DELETE FROM sessions WHERE id IN ({listed}) AND state = 'ended'", **params
        )

    async def events_after(
        self, session_id: str, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        rows = await self._fetch(
            "SELECT * FROM session_events WHERE session_id = :session_id AND id > :after"
            " ORDER BY id LIMIT :limit",
            session_id=session_id,
            after=after,
            limit=limit,
        )
        return [_row(EventRecord, self._dialect, row) for row in rows]

    async def tool_calls_after(
        self, session_id: str, after: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        # `type = 'tool_call'` is a literal so both planners match the partial index (0005).
        rows = await self._fetch(
            "SELECT * FROM session_events WHERE session_id = :session_id AND type = 'tool_call'"
            " AND id > :after ORDER BY id LIMIT :limit",
            session_id=session_id,
            after=after,
            limit=limit,
        )
        return [_row(EventRecord, self._dialect, row) for row in rows]

    # --- users ----------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self._one("SELECT * FROM users WHERE id = :id", id=user_id)
        return _row(UserRecord, self._dialect, row) if row else None

    async def upsert_user(
        self, phone: str, name: str | None, now: datetime, *, new_id: str
    ) -> tuple[UserRecord, bool]:
        """The user with this E.164 phone, created with `new_id` if new; a given name replaces
        the stored one (the service passes one only for a proved caller). Returns (user,
        existed_before).
        """
        inserted = await self._execute(
            "INSERT INTO users (id, phone, name, created_at, updated_at)"
            " VALUES (:id, :phone, :name, :now, :now) ON CONFLICT (phone) DO NOTHING",
            id=new_id,
            phone=phone,
            name=name,
            now=now,
        )
        if not inserted and name:
            await self._execute(
                "UPDATE users SET name = :name, updated_at = :now WHERE phone = :phone",
                name=name,
                now=now,
                phone=phone,
            )
        row = await self._one("SELECT * FROM users WHERE phone = :phone", phone=phone)
        assert row is not None
        return _row(UserRecord, self._dialect, row), not inserted

    # --- appointments ---------------------------------------------------------------------------

    async def busy_between(self, resource: str, window: Interval) -> list[Interval]:
        """The blocked spans of `resource`'s confirmed appointments that overlap `window`."""
        return (await self.busy_for([resource], window)).get(resource, [])

    async def busy_for(
        self, resources: Sequence[str], window: Interval
    ) -> dict[str, list[Interval]]:
        """Resource → the blocked spans of its confirmed appointments overlapping `window`, in
        one query (a slot search over several staff members and rooms)."""
        names = {f"r{i}": name for i, name in enumerate(dict.fromkeys(resources))}
        if not names:
            return {}
        rows = await self._fetch(
            "SELECT resource, blocked_from, blocked_until FROM resource_holds"
            f" WHERE resource IN ({', '.join(':' + key for key in names)})"
            " AND active = :active AND blocked_from >= :lower AND blocked_from < :end"
            " AND blocked_until > :start ORDER BY blocked_from",
            active=True,
            lower=window.start - MAX_BLOCKED,
            start=window.start,
            end=window.end,
            **names,
        )
        decode = self._dialect.decode
        found: dict[str, list[Interval]] = {}
        for r in rows:
            found.setdefault(r["resource"], []).append(
                Interval(
                    decode("blocked_from", r["blocked_from"]),
                    decode("blocked_until", r["blocked_until"]),
                )
            )
        return found

    async def insert_appointment(self, record: AppointmentRecord, blocked: Interval) -> None:
        """Insert the appointment and its holds on `record.resource` (and `record.room`) for
        `blocked`; raises OverlapError when the database refuses an overlapping hold.

        Postgres skips a row its exclusion constraint refuses (ON CONFLICT DO NOTHING covers
        exclusion constraints), SQLite's trigger aborts just the statement: either way the
        transaction stays usable, with no savepoint round trips, and the service rolls it back.
        """
        values = {f.name: getattr(record, f.name) for f in fields(AppointmentRecord)}
        columns = ", ".join(values)
        placeholders = ", ".join(f":{name}" for name in values)
        resources = list(filter(None, (record.resource, record.room)))
        holds = [
            self._statement(
                "INSERT INTO resource_holds (appointment_id, resource, blocked_from,"
                " blocked_until, active) VALUES (:id, :resource, :start, :end, :active)"
                " ON CONFLICT DO NOTHING",
                id=record.id,
                resource=resource,
                start=blocked.start,
                end=blocked.end,
                active=record.status == "confirmed",
            )
            for resource in resources
        ]
        insert = self._statement(
            f"INSERT INTO appointments ({columns}) VALUES ({placeholders})", **values
        )
        try:
            _, *inserted = await self._execute_many([insert, *holds])  # one round trip
        except Exception as exc:
            if not self._dialect.is_overlap(exc):
                raise
            raise OverlapError(f"a resource is busy in {blocked.start}–{blocked.end}") from None
        for resource, count in zip(resources, inserted, strict=True):
            if not count:
                raise OverlapError(f"{resource} is busy in {blocked.start}–{blocked.end}")

    async def get_appointment(
        self, appointment_id: str, *, lock: bool = False
    ) -> AppointmentRecord | None:
        lock_clause = self._dialect.lock_clause if lock else ""
        row = await self._one(
            "SELECT * FROM appointments WHERE id = :id" + lock_clause, id=appointment_id
        )
        return _row(AppointmentRecord, self._dialect, row) if row else None

    async def find_appointment_at(self, user_id: str, start: datetime) -> AppointmentRecord | None:
        """The user's appointment starting at `start`, a confirmed one first."""
        row = await self._one(
            "SELECT * FROM appointments WHERE user_id = :user_id AND starts_at = :start"
            " ORDER BY CASE status WHEN 'confirmed' THEN 0 ELSE 1 END, updated_at DESC LIMIT 1",
            user_id=user_id,
            start=start,
        )
        return _row(AppointmentRecord, self._dialect, row) if row else None

    async def list_appointments(
        self, user_id: str, *, since: datetime | None, include_cancelled: bool
    ) -> list[AppointmentRecord]:
        sql = "SELECT * FROM appointments WHERE user_id = :user_id"
        params: dict[str, Any] = {"user_id": user_id}
        if since is not None:
            sql += " AND ends_at > :since"
            params["since"] = since
        if not include_cancelled:
            sql += " AND status = 'confirmed'"
        rows = await self._fetch(sql + " ORDER BY starts_at, id", **params)
        return [_row(AppointmentRecord, self._dialect, row) for row in rows]

    async def session_appointments(self, session_id: str) -> list[AppointmentRecord]:
        rows = await self._fetch(
            "SELECT * FROM appointments WHERE session_id = :session_id ORDER BY starts_at, id",
            session_id=session_id,
        )
        return [_row(AppointmentRecord, self._dialect, row) for row in rows]

    async def appointments_starting(
        self,
        window: Interval,
        *,
        resource: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[BookedRecord]:
        """One page of the business's appointments: keyset-paged on (starts_at, id), so a page
        costs the same however deep it is and rows booked meanwhile are neither skipped nor
        repeated; the caller's phone and name come from `users` in the same query."""
        sql = (
            "SELECT appointments.*, users.phone AS user_phone, users.name AS user_name"
            " FROM appointments JOIN users ON users.id = appointments.user_id"
            " WHERE appointments.starts_at >= :start AND appointments.starts_at < :end"
        )
        params: dict[str, Any] = {"start": window.start, "end": window.end, "limit": limit}
        if resource is not None:
            sql += " AND (appointments.resource = :resource OR appointments.room = :resource)"
            params["resource"] = resource
        if after is not None:
            sql += (
                " AND (appointments.starts_at > :after_start"
                " OR (appointments.starts_at = :after_start AND appointments.id > :after_id))"
            )
            params["after_start"], params["after_id"] = after
        rows = await self._fetch(
            sql + " ORDER BY appointments.starts_at, appointments.id LIMIT :limit", **params
        )
        return [
            BookedRecord(
                _row(AppointmentRecord, self._dialect, row), row["user_phone"], row["user_name"]
            )
            for row in rows
        ]

    async def set_appointment_status(
        self,
        appointment_id: str,
        status: str,
        now: datetime,
        reason: str | None = None,
        by: Literal["caller", "operator"] = "caller",
        operator: str | None = None,
    ) -> None:
        """Change the status; the holds follow it (only a confirmed appointment blocks time).
        Sent at once, not deferred: a move inserts the new hold right after freeing the old."""
        await self._conn.batch(
            self.take_deferred(
                self._statement(
                    "UPDATE appointments SET status = :status, updated_at = :now,"
                    " cancelled_at = :now, cancel_reason = :reason, changed_by = :by,"
                    " changed_by_operator = :operator WHERE id = :id",
                    status=status,
                    now=now,
                    reason=reason,
                    by=by,
                    operator=operator,
                    id=appointment_id,
                ),
                self._statement(
                    "UPDATE resource_holds SET active = :active WHERE appointment_id = :id",
                    active=status == "confirmed",
                    id=appointment_id,
                ),
            )
        )

    # --- idempotency ----------------------------------------------------------------------------

    async def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(
            "SELECT * FROM idempotency_keys WHERE scope = :scope AND key = :key",
            scope=scope,
            key=key,
        )
        return _row(IdempotencyRecord, self._dialect, row) if row else None

    async def complete_idempotency(
        self, scope: str, key: str, outcome: str, body: dict[str, Any]
    ) -> None:
        """Record the answer under the claimed key (deferred: sent with the next batch)."""
        self._defer(
            "UPDATE idempotency_keys SET outcome = :outcome, body = :body"
            " WHERE scope = :scope AND key = :key",
            outcome=outcome,
            body=body,
            scope=scope,
            key=key,
        )

    # --- verification codes ---------------------------------------------------------------------

    async def set_user_name(self, user_id: str, name: str, now: datetime) -> None:
        await self._execute(
            "UPDATE users SET name = :name, updated_at = :now WHERE id = :id",
            name=name,
            now=now,
            id=user_id,
        )

    # --- the console's accounts -----------------------------------------------------------------

    async def get_operator(self, name: str) -> OperatorRecord | None:
        row = await self._one("SELECT * FROM operators WHERE name = :name", name=name)
        return _row(OperatorRecord, self._dialect, row) if row else None

    async def any_operator(self) -> bool:
        return await self._one("SELECT name FROM operators LIMIT 1") is not None

    async def list_operators(self) -> list[OperatorRecord]:
        rows = await self._fetch("SELECT * FROM operators ORDER BY name")
        return [_row(OperatorRecord, self._dialect, row) for row in rows]

    async def insert_operator(self, record: OperatorRecord) -> bool:
        values = {f.name: getattr(record, f.name) for f in fields(OperatorRecord)}
        inserted = await self._execute(
            f"INSERT INTO operators ({', '.join(values)})"
            f" VALUES ({', '.join(':' + name for name in values)}) ON CONFLICT (name) DO NOTHING",
            **values,
        )
        return bool(inserted)

    async def set_operator_password(self, name: str, password_hash: str, now: datetime) -> bool:
        changed = await self._execute(
            "UPDATE operators SET password_hash = :hash, updated_at = :now WHERE name = :name",
            hash=password_hash,
            now=now,
            name=name,
        )
        return bool(changed)

    async def delete_operator(self, name: str) -> bool:
        return bool(await self._execute("DELETE FROM operators WHERE name = :name", name=name))

    async def insert_code(self, record: CodeRecord) -> None:
        values = {f.name: getattr(record, f.name) for f in fields(CodeRecord)}
        await self._execute(
            f"INSERT INTO verification_codes ({', '.join(values)})"
            f" VALUES ({', '.join(':' + name for name in values)})",
            **values,
        )

    async def latest_code(self, session_id: str, phone: str) -> CodeRecord | None:
        """The newest code this session sent to `phone`."""
        row = await self._one(
            "SELECT * FROM verification_codes WHERE session_id = :session_id AND phone = :phone"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            session_id=session_id,
            phone=phone,
        )
        return _row(CodeRecord, self._dialect, row) if row else None

    async def codes_sent_since(self, phone: str, since: datetime) -> int:
        """Codes sent to `phone` since `since`, by any session (the per-number send limit)."""
        row = await self._one(
            "SELECT COUNT(*) AS n FROM verification_codes"
            " WHERE phone = :phone AND created_at >= :since",
            phone=phone,
            since=since,
        )
        return int(row["n"]) if row else 0

    async def update_code(self, code_id: str, attempts: int, verified_at: datetime | None) -> None:
        await self._execute(
            "UPDATE verification_codes SET attempts = :attempts, verified_at = :verified_at"
            " WHERE id = :id",
            attempts=attempts,
            verified_at=verified_at,
            id=code_id,
        )

    # --- the console's calls --------------------------------------------------------------------

    async def recent_sessions(
        self,
        *,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
        phone_ending: str | None = None,
        live: bool | None = None,
    ) -> list[SessionListing]:
        """One page of sessions, newest first: keyset-paged on (created_at, id) along the index
        of 0008, so a page costs the same however deep it is and calls started meanwhile are
        neither skipped nor repeated. A filter reads along the same index, skipping the rows
        that do not match (a business's calls, not a call centre's)."""
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if before is not None:
            # A row value: both planners read it as one range of the index, scanned backwards.
            conditions.append("(sessions.created_at, sessions.id) < (:before_created, :before_id)")
            params |= {"before_created": before[0], "before_id": before[1]}
        if phone_ending is not None:
            if not phone_ending.isdigit():
                raise ValueError("phone_ending takes digits only")
            conditions.append("users.phone LIKE :phone_like")  # digits: nothing to escape
            params["phone_like"] = "%" + phone_ending
        if live is not None:
            conditions.append("sessions.state <> 'ended'" if live else "sessions.state = 'ended'")
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        order = " ORDER BY sessions.created_at DESC, sessions.id DESC LIMIT :limit"
        return await self._listings(where + order, limit=limit, **params)

    async def session_listing(self, session_id: str) -> SessionListing | None:
        found = await self._listings(" WHERE sessions.id = :id", id=session_id)
        return found[0] if found else None

    async def _listings(self, clauses: str, **params: Any) -> list[SessionListing]:
        """Sessions with their callers (`clauses` after the join), then their tool calls counted
        by name and status in one more query, read through the partial index of tool calls
        (0005): never the transcripts."""
        rows = await self._fetch(
            "SELECT sessions.*, users.phone AS user_phone, users.name AS user_name"
            " FROM sessions LEFT JOIN users ON users.id = sessions.user_id" + clauses,
            **params,
        )
        listings = {
            row["id"]: SessionListing(
                _row(SessionRecord, self._dialect, row), row["user_phone"], row["user_name"]
            )
            for row in rows
        }
        if not listings:
            return []
        ids = {f"id_{n}": session_id for n, session_id in enumerate(listings)}
        name = self._dialect.json_text("payload", "name")
        status = self._dialect.json_text("payload", "status")
        counts = await self._fetch(
            f"SELECT session_id, {name} AS tool, {status} AS status, COUNT(*) AS n"
            " FROM session_events WHERE type = 'tool_call'"
            f" AND session_id IN ({', '.join(':' + key for key in ids)})"
            " GROUP BY 1, 2, 3",
            **ids,
        )
        for count in counts:
            key = (str(count["tool"]), str(count["status"]))
            listings[count["session_id"]].tool_calls[key] = int(count["n"])
        return list(listings.values())
