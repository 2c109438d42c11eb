"""The Postgres store (self-hosted or Supabase), on psycopg 3 with an async connection pool.

The exclusion constraint `appointments_no_overlap` guards bookings; this module only turns its
refusal into `OverlapError`. Through a transaction pooler (Supabase port 6543) server-side prepared
statements must be off, which `prepared_statements` (or auto-detection from the port) controls.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from voicebook.config import redact_url
from voicebook.scheduling.errors import StoreUnavailable
from voicebook.store.base import SchemaOutOfDate
from voicebook.store.migrations import MIGRATIONS_TABLE, Migration, MigrationState, load_migrations
from voicebook.store.sql import JSON_COLUMNS, Connection, Dialect, SqlTransaction

TRANSACTION_POOLER_PORT = 6543
RECONNECT_BUDGET_S = 10.0
MIGRATION_LOCK = int.from_bytes(
    hashlib.sha256(b"voicebook.migrate").digest()[:8], "big", signed=True
)
"""Advisory lock key held while migrating, so concurrent `migrate` runs apply each version once."""


class PostgresDialect(Dialect):
    name = "postgres"
    lock_clause = " FOR UPDATE"

    def sql(self, text: str) -> str:
        return self._NAMED.sub(r"%(\1)s", text)

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

    async def batch(self, statements: list[tuple[str, dict[str, Any]]]) -> None:
        if len(statements) == 1:
            await self._conn.execute(*statements[0])
            return
        async with self._conn.pipeline():  # one round trip for the lot
            for sql, params in statements:
                await self._conn.execute(sql, params)

    async def fetch_many(
        self, statements: list[tuple[str, dict[str, Any]]]
    ) -> list[list[dict[str, Any]]]:
        async with self._conn.pipeline():
            cursors = [self._conn.cursor() for _ in statements]
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                await cursor.execute(sql, params)
        return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]


def uses_transaction_pooler(url: str) -> bool:
    return urlsplit(url).port == TRANSACTION_POOLER_PORT


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
        check_schema: bool = True,
    ) -> None:
        self._url = url
        self.display_url = redact_url(url)
        self._pool_size = pool_size
        if prepared_statements is None:
            prepared_statements = not uses_transaction_pooler(url)
        self.prepared_statements = prepared_statements
        self._connect_timeout = connect_timeout
        self._check_schema = check_schema
        self._pool: AsyncConnectionPool | None = None

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # None disables server-side prepared statements (required behind a transaction pooler).
        conn.prepare_threshold = 5 if self.prepared_statements else None

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(1, int(self._connect_timeout)),
            },
            configure=self._configure,
            timeout=self._connect_timeout,
            # The pool retries a lost connection with doubling delays until this runs out; a
            # short budget keeps it from sleeping for minutes after a long outage (a request
            # waiting for a connection starts a fresh attempt once it gives up).
            reconnect_timeout=RECONNECT_BUDGET_S,
            open=False,
        )
        await pool.open(wait=False)
        self._pool = pool
        if self._check_schema:
            state = await self.migration_state()
            if state.pending:
                raise SchemaOutOfDate(
                    f"The database at {self.display_url} lacks {len(state.pending)} migration(s);"
                    " run `voicebook db migrate` first."
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
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable() from exc

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[SqlTransaction]:
        async with self._connection() as conn:
            tx = SqlTransaction(_PostgresConnection(conn), DIALECT)
            yield tx
            await tx.flush()

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    # --- migrations -----------------------------------------------------------------------------

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
        done = {version for version, _, _ in applied}
        pending = [m for m in load_migrations("postgres") if m.version not in done]
        return MigrationState(applied, pending)

    async def migrate(self) -> list[Migration]:
        """Apply missing migrations in one transaction under an advisory lock.

        A second `migrate` running at the same time waits for the lock, then finds nothing to do.
        The lock is transaction-scoped, so it also works through a transaction pooler.
        """
        async with self._connection() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {version for version, _, _ in await self._applied(conn)}
            pending = [m for m in load_migrations("postgres") if m.version not in done]
            for migration in pending:
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return pending
