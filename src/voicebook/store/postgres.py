"""The Postgres store (self-hosted or Supabase), on psycopg 3 with an async connection pool.

The exclusion constraint `resource_holds_no_overlap` guards bookings; this module only turns its
refusal into `OverlapError`. Through a transaction pooler (Supabase port 6543) server-side prepared
statements must be off, which `prepared_statements` (or auto-detection from the port) controls.

It never hangs, whatever Postgres or the network does (DESIGN §5):
- connecting is bounded (`connect_timeout`), and TCP keepalives and a user timeout make the kernel
  give up on a link that stopped answering;
- every transaction starts with `SET LOCAL statement_timeout`,
  `idle_in_transaction_session_timeout` and server-side keepalives, sent with its BEGIN:
  transaction-scoped, so they hold through a transaction pooler too, where a connection-level SET
  would not stay with us;
- each whole transaction, waiting for a connection included, runs under a deadline; one that
  misses it is answered `StoreUnavailable` and its connection is closed, never pooled again;
- a pooled connection is checked before use, so one Postgres dropped is replaced, not used;
- a transaction whose connection breaks under it while Postgres answers (a restart, a pooler's
  recycle) is `ConnectionLost`, which `retrying()` runs again on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import re
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from voicebook.config import redact_url
from voicebook.scheduling.errors import StoreUnavailable
from voicebook.store.base import SchemaOutOfDate
from voicebook.store.migrations import MIGRATIONS_TABLE, Migration, MigrationState, load_migrations
from voicebook.store.retry import ConnectionLost, TransactionConflict
from voicebook.store.sql import JSON_COLUMNS, Connection, Dialect, SqlTransaction, Statement

log = logging.getLogger(__name__)

TRANSACTION_POOLER_PORT = 6543
RECONNECT_BUDGET_S = 10.0
MIGRATION_LOCK = int.from_bytes(
    hashlib.sha256(b"voicebook.migrate").digest()[:8], "big", signed=True
)
"""Advisory lock key held while migrating, so concurrent `migrate` runs apply each version once."""
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3
"""A connection whose peer vanished is noticed within about 25 s of silence, at both ends."""
PING_TIMEOUT_S = 2.5
"""`ping()` (what /readyz asks) answers within this, below the route's own 3 s bound."""
RECANCEL_S = 0.05
"""After its deadline, a transaction still running is cancelled again this often (see _Deadline)."""
EXCLUSIVE_HOLD_S = 60.0
"""Postgres ends the session holding an `exclusive()` lock that long idle (its holder is gone)."""
CONFLICT_STATES = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected: the transaction was rolled back; running it again
is expected to succeed."""
_DEFAULT: Any = object()


class PostgresDialect(Dialect):
    name = "postgres"
    lock_clause = " FOR UPDATE"

    def sql(self, text: str) -> str:
        return _psycopg_placeholders(text)

    def encode(self, value: Any, column: str | None = None) -> Any:
        if column in JSON_COLUMNS and value is not None:
            return Jsonb(value)
        return value

    def decode(self, column: str, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc)
        return value

    def is_overlap(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.ExclusionViolation)


@functools.lru_cache(maxsize=1024)
def _psycopg_placeholders(text: str) -> str:
    """`:name` → `%(name)s`. Remembered: the statements are a few hundred texts sent over and
    over (a booking sends a dozen), and the substitution cost more than a row's decoding."""
    return Dialect._NAMED.sub(r"%(\1)s", text)


DIALECT = PostgresDialect()


class _PostgresConnection(Connection):
    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cursor = await self._conn.execute(sql, params)
        return await cursor.fetchall()

    async def execute(self, sql: str, params: dict[str, Any]) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def batch(self, statements: list[Statement]) -> None:
        if len(statements) == 1:
            await self._conn.execute(*statements[0])
            return
        await self._pipelined(statements)

    async def fetch_many(self, statements: list[Statement]) -> list[list[dict[str, Any]]]:
        cursors = await self._pipelined(statements)
        return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]

    async def execute_many(self, statements: list[Statement]) -> list[int]:
        if len(statements) == 1:
            return [await self.execute(*statements[0])]
        return [cursor.rowcount for cursor in await self._pipelined(statements)]

    async def _pipelined(
        self, statements: list[Statement]
    ) -> list[psycopg.AsyncCursor[dict[str, Any]]]:
        """Run `statements` in one round trip (a pipeline); a cursor for each, with its rows."""
        async with self._conn.pipeline():
            cursors = [self._conn.cursor() for _ in statements]
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                await cursor.execute(sql, params)
        return cursors


async def _commit(conn: psycopg.AsyncConnection[Any], last_writes: list[Statement]) -> None:
    """COMMIT, after `last_writes` in the same round trip (a failing one leaves the transaction
    in error, and COMMIT is not run: the caller rolls back)."""
    if not last_writes:
        await conn.execute("COMMIT", prepare=False)
        return
    async with conn.pipeline():
        for sql, params in last_writes:
            await conn.execute(sql, params)
        await conn.execute("COMMIT", prepare=False)


def uses_transaction_pooler(url: str) -> bool:
    return urlsplit(url).port == TRANSACTION_POOLER_PORT


def link_parameters(url: str, connect_timeout: float, give_up: float) -> dict[str, Any]:
    """libpq parameters that bound how long a dead link can keep us waiting: the connect timeout,
    TCP keepalives for idle connections, and `tcp_user_timeout` (data sent but unacknowledged for
    `give_up` seconds drops the connection). Any of them given in the URL's query string (e.g.
    `?keepalives_idle=60`) is left as given."""
    given = conninfo_to_dict(url)
    wanted = {
        "connect_timeout": max(2, math.ceil(connect_timeout)),  # libpq: whole seconds, 2 at least
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": round(give_up * 1000),
    }
    return {name: value for name, value in wanted.items() if name not in given}


def begin_statements(statement_timeout: float | None, idle_timeout: float | None) -> list[str]:
    """BEGIN and the transaction's limits: two statements that a transaction's first round trip
    carries before its own (`_connection`), or one simple query where nothing follows. The
    limits are `set_config(…, is_local => true)`, i.e. `SET LOCAL`: they last until the
    transaction ends, so they hold through a transaction pooler, where the next transaction may
    run on another server connection. None or 0: no limit (not the server's).

    Postgres ends a transaction left idle for `idle_timeout`, freeing its locks. Its timer stops,
    though, at the Flush psycopg sends after a pipelined batch, until the next statement; so the
    server's end of the link gets TCP keepalives too: a client gone silent behind a dead link is
    dropped within about half a minute wherever it stopped.
    """

    def ms(seconds: float | None) -> int:
        return max(1, round(seconds * 1000)) if seconds else 0

    limits = {
        "statement_timeout": ms(statement_timeout),
        "idle_in_transaction_session_timeout": ms(idle_timeout),
        "tcp_keepalives_idle": KEEPALIVE_IDLE_S,
        "tcp_keepalives_interval": KEEPALIVE_INTERVAL_S,
        "tcp_keepalives_count": KEEPALIVE_COUNT,
    }
    settings = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in limits.items())
    return ["BEGIN", f"SELECT {settings}"]


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class _Deadline:
    """Cancel the task inside this block if it is still there after `seconds`, and again every
    RECANCEL_S until it has left; the cancellation leaves the block as TimeoutError.

    Once is not enough: psycopg answers the cancellation of a running query by asking the server
    to cancel it and waiting for the answer, up to seconds on a link that stopped forwarding; a
    second cancellation makes it give up (and close the connection). `asyncio.timeout` cancels
    once. None: no deadline.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.expired = False
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cancels = 0
        self._cancelling = 0

    async def __aenter__(self) -> _Deadline:
        if self.seconds is not None:
            self._task = asyncio.current_task()
            self._cancelling = _cancelling(self._task)
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)
        return self

    def _expire(self) -> None:
        assert self._task is not None
        self.expired = True
        self._cancels += 1
        self._task.cancel()
        self._timer = asyncio.get_running_loop().call_later(RECANCEL_S, self._expire)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.expired:
            return
        uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            for _ in range(self._cancels):
                uncancel()
        # Our own cancellation becomes a timeout; one from outside (shutdown) stays what it is.
        if isinstance(exc, asyncio.CancelledError) and _cancelling(self._task) <= self._cancelling:
            raise TimeoutError(f"no answer within {self.seconds:g} s") from exc


def _cancelling(task: asyncio.Task[Any] | None) -> int:
    counter = getattr(task, "cancelling", None)  # Python 3.11+
    return counter() if counter is not None else 0


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Database failures as the store reports them: a conflict to run again, or unavailable."""
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate in CONFLICT_STATES:
            raise TransactionConflict() from exc
        if isinstance(
            exc,
            (
                psycopg.OperationalError,  # lost or refused, statement_timeout, PoolTimeout, ...
                psycopg.InterfaceError,
                pg_errors.IdleInTransactionSessionTimeout,
            ),
        ):
            raise StoreUnavailable() from exc
        raise
    except TimeoutError as exc:  # the deadline
        raise StoreUnavailable() from exc


def _pending(applied: list[tuple[int, str, datetime]]) -> list[Migration]:
    """The Postgres migrations not among `applied`, in order."""
    done = {version for version, _, _ in applied}
    return [m for m in load_migrations("postgres") if m.version not in done]


PROBE_TIMEOUT_S = 2.0
"""A direct connection attempt that says why the pool has none gives up after this."""
PROBE_MEMORY_S = 1.0
"""A failed attempt's answer is reused this long after it, so open() and the call after it (or a
burst of requests) ask the server once."""
_AUTH_STATES = frozenset({"28000", "28P01"})
_AUTH_TEXTS = ("password authentication failed", "no pg_hba.conf entry", "authentication failed")
_HOST_TEXTS = (
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
)


def connect_failure(exc: BaseException, url: str) -> str:
    """Why a connection to `url` failed, as one stable short sentence (no password: names come
    from the URL, never its secret)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        params = {}
    host = params.get("host") or "localhost"
    where = f"{host}:{params.get('port') or 5432}"
    text = str(exc).lower()
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "3D000" or re.search(r'database "[^"]*" does not exist', text):
        return f"The database {params.get('dbname') or '(default)'!r} does not exist on {where}."
    if sqlstate in _AUTH_STATES or any(t in text for t in _AUTH_TEXTS):
        return f"{where} rejected the user name or password."
    if re.search(r'role "[^"]*" does not exist', text):
        return f"{where} rejected the user name or password (the user does not exist)."
    if any(t in text for t in _HOST_TEXTS):
        return f"The database host {host!r} is unknown (no such name in DNS)."
    if "connection refused" in text:
        return f"Nothing accepts connections at {where} (connection refused)."
    if isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text:
        return f"{where} did not answer within {PROBE_TIMEOUT_S:g} s (connection timed out)."
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def unreachable(cause: str) -> StoreUnavailable:
    """`StoreUnavailable` with the cause kept as `.cause` for /readyz (service key), logs and
    the CLI. A request's 503 keeps the plain sentence: the cause names hosts and ports, which
    neither a page nor a caller should hear."""
    exc = StoreUnavailable()
    exc.cause = cause  # type: ignore[attr-defined]
    return exc


def _reason(exc: BaseException) -> str:
    """Why a store call failed, in a few words (for logs and /readyz)."""
    known = getattr(exc, "cause", None)
    if isinstance(known, str):
        return known
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


class PostgresStore:
    """Postgres through a pool; every failure to reach it becomes `StoreUnavailable`."""

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        prepared_statements: bool | None = None,
        connect_timeout: float = 5.0,
        statement_timeout: float = 5.0,
        transaction_timeout: float = 8.0,
        check_schema: bool = True,
    ) -> None:
        self._url = url
        self.display_url = redact_url(url)
        self._pool_size = pool_size
        if prepared_statements is None:
            prepared_statements = not uses_transaction_pooler(url)
        self.prepared_statements = prepared_statements
        self._connect_timeout = connect_timeout
        self._transaction_timeout = transaction_timeout
        # A client never leaves its transaction idle for as long as the whole transaction may
        # take, so one idle that long has lost its client: Postgres ends it and frees its locks.
        self._begin = begin_statements(statement_timeout, transaction_timeout)
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,  # transactions are begun explicitly (see _connection)
            "row_factory": dict_row,
            **link_parameters(url, connect_timeout, transaction_timeout),
        }
        self._schema_checked = not check_schema
        self._since_drain: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()
        """Connections opened since the pool was last drained (see `_check`)."""
        self._pool: AsyncConnectionPool | None = None
        self._connected = False
        """A pooled connection was handed out since the last failure (no probe needed)."""
        self._probe: asyncio.Future[str | None] | None = None
        self._probe_ended = 0.0

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # None disables server-side prepared statements (required behind a transaction pooler).
        conn.prepare_threshold = 5 if self.prepared_statements else None
        self._since_drain.add(conn)

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """psycopg_pool's own check of a pooled connection before it is handed out (one empty
        query). One found dead usually means Postgres dropped them all (a restart, a failover):
        then every idle one is replaced at once, rather than each found dead after a backoff —
        unless it predates the last such drain (it was in use then, and goes anyway)."""
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if self._pool is not None and conn in self._since_drain:
                self._since_drain = weakref.WeakSet()
                log.info(
                    "a pooled connection to %s was dead: replacing the idle ones", self.display_url
                )
                await self._pool.drain()
            raise

    async def open(self) -> None:
        """Open the pool and check that the schema is current (`SchemaOutOfDate` if not).

        A database that does not answer yet is no error: the pool keeps connecting in the
        background, requests are answered `StoreUnavailable` until it answers, and the schema is
        checked then.
        """
        if self._pool is not None:
            return
        pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            kwargs=self._connect_kwargs,
            configure=self._configure,
            check=self._check,
            timeout=self._connect_timeout,
            # The pool retries a lost connection with doubling delays until this runs out; a
            # short budget keeps it from sleeping for minutes after a long outage (a request
            # waiting for a connection starts a fresh attempt once it gives up).
            reconnect_timeout=RECONNECT_BUDGET_S,
            open=False,
        )
        await pool.open(wait=False)
        self._pool = pool
        if not self._schema_checked:
            try:
                async with self._connection() as conn:
                    await self._check_schema_on(conn)
            except StoreUnavailable as exc:
                log.warning(
                    "The database at %s does not answer yet (%s): requests get 503 "
                    "store_unavailable until it does.",
                    self.display_url,
                    _reason(exc),
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def pool_stats(self) -> dict[str, int]:
        """The pool's figures for /metrics (psycopg_pool's get_stats: pool_size,
        pool_available, requests_waiting, …); empty while closed."""
        return self._pool.get_stats() if self._pool is not None else {}

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(
        self,
        *,
        begin: list[str] | None = None,
        deadline: float | None = _DEFAULT,
        commit_with: list[Statement] | None = None,
        begin_with: list[Statement] | None = None,
    ) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """A pooled connection inside a transaction (committed when the block ends, rolled back
        on error), the whole of it within `deadline` seconds (default: the transaction timeout).

        The BEGIN statements are put in `begin_with`, when given, for the block's first round
        trip to carry (else sent at once); what the block leaves in `commit_with` is sent with
        the COMMIT, in one round trip.

        A connection that may be broken — the deadline passed, the link failed, the transaction
        could not be ended — is closed, so the pool replaces it instead of handing it out again.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("store is not open")
        limit = _Deadline(self._transaction_timeout if deadline is _DEFAULT else deadline)
        conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        try:
            with _store_errors():
                async with limit:
                    conn = await self._getconn(pool)
                    opening = begin or self._begin
                    if begin_with is not None:
                        begin_with += [(sql, {}) for sql in opening]
                    else:
                        await conn.execute("; ".join(opening), prepare=False)
                    try:
                        yield conn
                        await _commit(conn, commit_with or [])
                    except BaseException as exc:
                        lost = isinstance(exc, psycopg.OperationalError) and conn.broken
                        if lost and not limit.expired:
                            raise ConnectionLost() from exc
                        status = conn.info.transaction_status
                        if not limit.expired and status in (
                            TransactionStatus.INTRANS,
                            TransactionStatus.INERROR,
                        ):
                            with contextlib.suppress(psycopg.Error):
                                await conn.execute("ROLLBACK", prepare=False)
                        raise
        except StoreUnavailable as exc:
            if not isinstance(exc, TransactionConflict) or isinstance(exc, ConnectionLost):
                self._connected = False  # the next call asks why, if the pool has none to give
            raise
        finally:
            if conn is not None:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    await conn.close()
                await pool.putconn(conn)

    async def _getconn(self, pool: AsyncConnectionPool) -> psycopg.AsyncConnection[dict[str, Any]]:
        """A pooled connection; while the pool has none to give and none has been handed out
        since the last failure, one direct attempt first says why it cannot have one, within
        PROBE_TIMEOUT_S (the pool's own wait would only say it timed out)."""
        if not self._connected and pool.get_stats().get("pool_available", 0) == 0:
            cause = await self._why_unreachable()
            if cause is not None:
                raise unreachable(cause)
        try:
            conn = await pool.getconn()
        except BaseException:
            self._connected = False
            raise
        self._connected = True
        return conn

    async def _why_unreachable(self) -> str | None:
        """Why a direct connection fails (None: it succeeds), asked once for concurrent callers
        and remembered for PROBE_MEMORY_S."""
        loop = asyncio.get_running_loop()
        probe = self._probe
        if probe is not None and (
            not probe.done() or loop.time() - self._probe_ended < PROBE_MEMORY_S
        ):
            return await asyncio.shield(probe)
        probe = self._probe = loop.create_future()
        try:
            cause = await self._attempt()
        except BaseException:
            probe.set_result(None)  # cancelled: let the pool answer
            self._probe = None
            raise
        self._probe_ended = loop.time()
        probe.set_result(cause)
        if cause is None:
            self._probe = None
        return cause

    async def _attempt(self) -> str | None:
        kwargs = {**self._connect_kwargs, "connect_timeout": math.ceil(PROBE_TIMEOUT_S)}
        try:
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(self._url, **kwargs), PROBE_TIMEOUT_S
            )
        except (psycopg.Error, OSError, TimeoutError, asyncio.TimeoutError) as exc:
            return connect_failure(exc, self._url)
        await conn.close()
        return None

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[SqlTransaction]:
        opening: list[Statement] = []
        last_writes: list[Statement] = []
        async with self._connection(begin_with=opening, commit_with=last_writes) as conn:
            if not self._schema_checked:  # the database did not answer when the store opened
                try:
                    await self._check_schema_on(conn)
                except SchemaOutOfDate as exc:
                    log.error("%s", exc)
                    raise StoreUnavailable() from exc
            tx = SqlTransaction(_PostgresConnection(conn), DIALECT, deferred=opening)
            yield tx
            last_writes += tx.take_deferred()

    async def ping(self) -> None:
        """Answer within PING_TIMEOUT_S, or raise `StoreUnavailable` saying why."""
        try:
            async with self._connection(deadline=PING_TIMEOUT_S) as conn:
                if not self._schema_checked:
                    await self._check_schema_on(conn)
                await conn.execute("SELECT 1")
        except SchemaOutOfDate as exc:
            raise StoreUnavailable(str(exc)) from exc
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"The database is not reachable ({_reason(exc)}).") from exc

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Whether this process, among all on this database, holds `name` for the block: False
        at once when another one does.

        A transaction-scoped advisory lock (`pg_try_advisory_xact_lock`, so a transaction pooler
        keeps it too), on a connection of its own outside the pool, so the block's own
        transactions never wait for it. It goes when the block ends (the connection is closed,
        with no round trip that could hang; Postgres lets go a moment later), or with this
        process or its link.
        """
        limit = _Deadline(self._transaction_timeout)
        conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        try:
            with _store_errors():
                async with limit:
                    conn = await psycopg.AsyncConnection.connect(self._url, **self._connect_kwargs)
                    await self._configure(conn)
                    opening = "; ".join(begin_statements(None, EXCLUSIVE_HOLD_S))
                    await conn.execute(opening, prepare=False)
                    cursor = await conn.execute(
                        "SELECT pg_try_advisory_xact_lock(%s) AS held", (lock_key(name),)
                    )
                    row = await cursor.fetchone()
            yield bool(row and row["held"])
        finally:
            if conn is not None:
                await conn.close()

    # --- migrations -----------------------------------------------------------------------------

    async def _check_schema_on(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Remember that the schema is current, or raise `SchemaOutOfDate`."""
        pending = _pending(await self._applied(conn))
        if pending:
            raise SchemaOutOfDate(
                f"The database at {self.display_url} lacks {len(pending)} migration(s);"
                " run `voicebook db migrate` first."
            )
        self._schema_checked = True

    @staticmethod
    async def _applied(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, str, datetime]]:
        exists = await (
            await conn.execute("SELECT to_regclass(%s) AS t", (MIGRATIONS_TABLE,))
        ).fetchone()
        if exists is None or exists["t"] is None:
            return []
        cursor = await conn.execute(
            f"SELECT version, name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
        )
        return [(r["version"], r["name"], r["applied_at"]) for r in await cursor.fetchall()]

    async def migration_state(self) -> MigrationState:
        async with self._connection() as conn:
            applied = await self._applied(conn)
        return MigrationState(applied, _pending(applied))

    async def migrate(self) -> list[Migration]:
        """Apply missing migrations in one transaction under an advisory lock.

        A second `migrate` running at the same time waits for the lock, then finds nothing to do.
        The lock is transaction-scoped, so it also works through a transaction pooler. No time
        limit: a migration may take as long as it takes.
        """
        async with self._connection(begin=begin_statements(None, None), deadline=None) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            pending = _pending(await self._applied(conn))
            for migration in pending:
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return pending
