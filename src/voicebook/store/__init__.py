"""Persistence: the Store protocol and its SQLite and Postgres implementations."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING

from voicebook.store.base import OverlapError, SchemaOutOfDate, Store, StoreTransaction
from voicebook.store.retry import TransactionConflict, retrying

if TYPE_CHECKING:
    from voicebook.config import Settings

__all__ = [
    "OverlapError",
    "SchemaOutOfDate",
    "Store",
    "StoreTransaction",
    "TransactionConflict",
    "create_store",
    "exclusive",
    "retrying",
]


def create_store(settings: Settings, *, managing_schema: bool = False) -> Store:
    """The store the settings select (not yet opened). Drivers are imported only when chosen.

    On open, the embedded SQLite file migrates itself; Postgres never does, because a shared
    database is migrated deliberately with `voicebook db migrate` — it refuses to open with pending
    migrations instead. `managing_schema=True` skips both, for the `db` commands themselves.
    """
    url = settings.resolved_database_url()
    if url.startswith("sqlite:"):
        from voicebook.store.sqlite import SqliteStore, path_from_url

        return SqliteStore(path_from_url(url), auto_migrate=not managing_schema)
    from voicebook.store.postgres import PostgresStore

    return PostgresStore(
        url,
        pool_size=settings.database_pool_size,
        prepared_statements=settings.database_prepared_statements,
        connect_timeout=settings.database_connect_timeout_s,
        statement_timeout=settings.database_statement_timeout_s,
        transaction_timeout=settings.database_transaction_timeout_s,
        check_schema=not managing_schema,
    )


def exclusive(store: Store, name: str) -> AbstractAsyncContextManager[bool]:
    """Whether this process may do the work called `name` now, while other processes on the same
    database may be about to do it too (`async with exclusive(store, name) as mine:`).

    Postgres: only while it holds a transaction-scoped advisory lock for `name`
    (`PostgresStore.exclusive`). SQLite: always — it is one machine, where every write is a
    `BEGIN IMMEDIATE` transaction that already runs alone, so work made of idempotent writes
    (ending an idle session twice ends it once) needs no lock of its own.
    """
    lock = getattr(store, "exclusive", None)
    return lock(name) if lock is not None else nullcontext(True)
