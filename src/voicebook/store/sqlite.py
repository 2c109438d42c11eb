"""The embedded SQLite store: one file, WAL, serialised writers.

Writers use `BEGIN IMMEDIATE`, which takes SQLite's single write lock before reading, so a check and
the write that depends on it cannot interleave with another writer — in this process or any other.
Within one process an asyncio lock queues writers before they reach SQLite, so a waiting writer
never holds a connection thread while the lock holder needs one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from voicebook.scheduling.errors import StoreUnavailable
from voicebook.store.migrations import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationState,
    load_migrations,
    split_sqlite_script,
)
from voicebook.store.sql import JSON_COLUMNS, TIMESTAMP_COLUMNS, Connection, Dialect, SqlTransaction

BUSY_TIMEOUT_MS = 15_000


def format_instant(value: datetime) -> str:
    """UTC, fixed width, millisecond precision: text order equals time order."""
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SqliteDialect(Dialect):
    name = "sqlite"

    def encode(self, value: Any, column: str | None = None) -> Any:
        if isinstance(value, datetime):
            return format_instant(value)
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"), default=str)
        return value

    def decode(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in TIMESTAMP_COLUMNS:
            return parse_instant(value)
        if column in JSON_COLUMNS:
            return json.loads(value)
        return value

    def is_overlap(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "_no_overlap" in str(exc)

    def json_text(self, column: str, key: str, *inner: str) -> str:
        """json_extract: SQLite before 3.38 has no `->>`."""
        return f"json_extract({column}, '$.{'.'.join((key, *inner))}')"


DIALECT = SqliteDialect()


class _SqliteConnection(Connection):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
            names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def execute(self, sql: str, params: dict[str, Any]) -> int:
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def batch(self, statements: list[tuple[str, dict[str, Any]]]) -> None:
        for sql, params in statements:
            await self.execute(sql, params)

    async def fetch_many(
        self, statements: list[tuple[str, dict[str, Any]]]
    ) -> list[list[dict[str, Any]]]:
        return [await self.fetch(sql, params) for sql, params in statements]

    async def execute_many(self, statements: list[tuple[str, dict[str, Any]]]) -> list[int]:
        return [await self.execute(sql, params) for sql, params in statements]


def path_from_url(url: str) -> Path:
    """`sqlite:///relative.db` or `sqlite:////absolute/path.db` → a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"expected sqlite:///path/to/file.db, got {url!r}")
    rest = url[len(prefix) :]
    if rest.startswith(":memory:"):
        raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
    return Path(rest)


class SqliteStore:
    """The default store: a single SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, connections: int = 4, auto_migrate: bool = True) -> None:
        self.path = path
        self.display_url = f"sqlite:///{path}"
        self._size = connections
        self._auto_migrate = auto_migrate
        self._pool: asyncio.Queue[aiosqlite.Connection] | None = None
        self._all: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._enable_wal(conn)
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            await conn.close()  # its thread would otherwise keep the process alive
            raise
        return conn

    @staticmethod
    async def _enable_wal(conn: aiosqlite.Connection) -> None:
        """Switch to WAL, waiting out another process's write lock on a new file.

        SQLite answers this pragma with SQLITE_BUSY at once, ignoring busy_timeout, while another
        connection writes to a file that is not yet in WAL mode; so retry until the same timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                await conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def open(self) -> None:
        if self._pool is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        try:
            for _ in range(self._size):
                conn = await self._connect()
                self._all.append(conn)
                pool.put_nowait(conn)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"The database file {self.path} cannot be opened.") from exc
        self._pool = pool
        if self._auto_migrate:
            await self.migrate()

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()
        self._pool = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        async with self._write_lock if write else nullcontext():
            conn = await self._pool.get()
            try:
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:
                self._pool.put_nowait(conn)
                raise StoreUnavailable() from exc
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")
            finally:
                self._pool.put_nowait(conn)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[SqlTransaction]:
        async with self._connection(write=write) as conn:
            tx = SqlTransaction(_SqliteConnection(conn), DIALECT)
            yield tx
            await tx.flush()

    async def ping(self) -> None:
        async with self._connection(write=False) as conn:
            await conn.execute("SELECT 1")

    def pool_stats(self) -> dict[str, int]:
        """The connection queue's figures, named as psycopg_pool names them; empty while closed."""
        if self._pool is None:
            return {}
        return {"pool_size": len(self._all), "pool_available": self._pool.qsize()}

    # --- migrations -----------------------------------------------------------------------------

    async def _applied(self, conn: aiosqlite.Connection) -> list[tuple[int, str, datetime]]:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        async with conn.execute(
            f"SELECT version, name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
        ) as cursor:
            return [(v, n, parse_instant(a)) for v, n, a in await cursor.fetchall()]

    async def migration_state(self) -> MigrationState:
        async with self._connection(write=True) as conn:
            applied = await self._applied(conn)
        done = {version for version, _, _ in applied}
        return MigrationState(
            applied, [m for m in load_migrations("sqlite") if m.version not in done]
        )

    async def migrate(self) -> list[Migration]:
        """Apply the missing migrations in one immediate transaction; returns what was applied."""
        async with self._connection(write=True) as conn:
            done = {version for version, _, _ in await self._applied(conn)}
            pending = [m for m in load_migrations("sqlite") if m.version not in done]
            for migration in pending:
                for statement in split_sqlite_script(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, format_instant(datetime.now(timezone.utc))),
                )
        return pending
