"""Persistence: the Store protocol and its SQLite and Postgres implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicebook.store.base import OverlapError, SchemaOutOfDate, Store, StoreTransaction

if TYPE_CHECKING:
    from voicebook.config import Settings

__all__ = ["OverlapError", "SchemaOutOfDate", "Store", "StoreTransaction", "create_store"]


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
        check_schema=not managing_schema,
    )
