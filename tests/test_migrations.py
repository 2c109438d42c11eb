"""Migrations: versioned, forward-only, idempotent, safe from two processes, and equal to
supabase_schema.sql; the overlap guard lives in the database itself (DESIGN §5).

Postgres tests run against the machine's real server through the conftest fixtures.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from voicebook.cli.app import app
from voicebook.store.migrations import MIGRATIONS_TABLE, load_migrations
from voicebook.store.postgres import MIGRATION_LOCK, PostgresStore
from voicebook.store.sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SUPABASE_SCHEMA = REPO_ROOT / "supabase_schema.sql"
SUBPROCESS_TIMEOUT = 60
# Test-harness variables that are not settings; everything else with these prefixes is cleared.


# --- helpers --------------------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; exit code and stdout+stderr with whitespace collapsed."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_schema(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()


def sqlite_migration_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f"SELECT version, name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
        ).fetchall()


def pg_schema(url: str) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per table in schema public: columns, constraints, indexes, and (non-internal) triggers."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, column_name"
        ).fetchall()
        constraints = conn.execute(
            "SELECT c.conrelid::regclass::text, c.conname, c.contype::text,"
            " pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
            " WHERE r.relnamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' ORDER BY 1, 2"
        ).fetchall()
        triggers = conn.execute(
            "SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)"
            " FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND r.relnamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall()
    kinds = ("columns", "constraints", "indexes", "triggers")
    schema: dict[str, dict[str, list[tuple[Any, ...]]]] = {
        table: {kind: [] for kind in kinds} for table in tables
    }
    for kind, rows in (
        ("columns", columns),
        ("constraints", constraints),
        ("indexes", indexes),
        ("triggers", triggers),
    ):
        for table, *rest in rows:
            schema.setdefault(table, {kind: [] for kind in kinds})
            schema[table][kind].append(tuple(rest))
    return schema


def pg_extensions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT extname FROM pg_extension ORDER BY 1")]


def pg_migration_rows(url: str, *, with_time: bool = False) -> list[tuple[Any, ...]]:
    columns = "version, name, applied_at" if with_time else "version, name"
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {columns} FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()


def pg_migrate(url: str) -> list[int]:
    """PostgresStore.migrate on `url`; the versions it applied."""

    async def run() -> list[int]:
        store = PostgresStore(url, check_schema=False)
        await store.open()
        try:
            return [m.version for m in await store.migrate()]
        finally:
            await store.close()

    return asyncio.run(run())


def sqlite_migrate(path: Path) -> list[int]:
    async def run() -> list[int]:
        store = SqliteStore(path, auto_migrate=False)
        await store.open()
        try:
            return [m.version for m in await store.migrate()]
        finally:
            await store.close()

    return asyncio.run(run())


def all_versions(dialect: str) -> list[int]:
    return [m.version for m in load_migrations(dialect)]


def expected_rows(dialect: str) -> list[tuple[int, str]]:
    return [(m.version, m.name) for m in load_migrations(dialect)]


def spawn_migrate(url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voicebook", "db", "migrate", "--database-url", url],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Wait for every process (killing any that hangs); (exit code, output) of each."""
    outcomes = []
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    for process in processes:
        try:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
            out += "\n[killed: still running after the timeout]"
        outcomes.append((process.returncode, out))
    return outcomes


# --- the migration files ----------------------------------------------------------------------


def test_both_dialects_have_the_same_versions() -> None:
    sqlite_migrations = load_migrations("sqlite")
    postgres_migrations = load_migrations("postgres")
    assert sqlite_migrations, "no migrations found"
    assert [(m.version, m.name) for m in sqlite_migrations] == [
        (m.version, m.name) for m in postgres_migrations
    ]
    versions = [m.version for m in postgres_migrations]
    assert versions == list(range(1, len(versions) + 1)), "versions are contiguous from 0001"


# --- idempotence ------------------------------------------------------------------------------


def test_sqlite_migrate_applies_everything_once(sqlite_path: Path) -> None:
    assert sqlite_migrate(sqlite_path) == all_versions("sqlite")
    schema = sqlite_schema(sqlite_path)
    rows = sqlite_migration_rows(sqlite_path)
    assert [(v, n) for v, n, _ in rows] == expected_rows("sqlite")
    names = {name for _, name, _, _ in schema}
    assert {"users", "sessions", "appointments", "session_events", "idempotency_keys"} <= names

    assert sqlite_migrate(sqlite_path) == []
    assert sqlite_schema(sqlite_path) == schema
    assert sqlite_migration_rows(sqlite_path) == rows


def test_sqlite_store_open_migrates_a_new_file(sqlite_path: Path) -> None:
    async def run() -> None:
        store = SqliteStore(sqlite_path)
        await store.open()
        try:
            state = await store.migration_state()
        finally:
            await store.close()
        assert [v for v, _, _ in state.applied] == all_versions("sqlite")
        assert state.pending == []

    asyncio.run(run())


def test_postgres_migrate_applies_everything_once(empty_pg_url: str) -> None:
    assert pg_migrate(empty_pg_url) == all_versions("postgres")
    schema = pg_schema(empty_pg_url)
    rows = pg_migration_rows(empty_pg_url, with_time=True)
    assert [(v, n) for v, n, _ in rows] == expected_rows("postgres")
    assert {"users", "sessions", "appointments", "session_events", "idempotency_keys"} <= set(
        schema
    )

    assert pg_migrate(empty_pg_url) == []
    assert pg_schema(empty_pg_url) == schema
    assert pg_migration_rows(empty_pg_url, with_time=True) == rows


def test_postgres_store_refuses_to_open_with_pending_migrations(empty_pg_url: str) -> None:
    from voicebook.store.base import SchemaOutOfDate

    async def run() -> None:
        store = PostgresStore(empty_pg_url)
        with pytest.raises(SchemaOutOfDate, match="voicebook db migrate"):
            await store.open()
        await store.close()

    asyncio.run(run())


# --- two processes at once --------------------------------------------------------------------


@pytest.mark.parametrize("hold_lock", [False, True], ids=["free_start", "held_lock"])
def test_two_processes_migrate_one_postgres_database(
    empty_pg_url: str, isolated_env: Path, hold_lock: bool
) -> None:
    """Both exit 0 and each version is recorded once. With `held_lock` the test holds the
    migration lock until both processes are waiting for it, so they certainly overlap."""
    blocker = psycopg.connect(empty_pg_url, autocommit=True) if hold_lock else None
    try:
        if blocker is not None:
            blocker.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        processes = [spawn_migrate(empty_pg_url, isolated_env) for _ in range(2)]
        if blocker is not None:
            deadline = time.monotonic() + SUBPROCESS_TIMEOUT
            waiting = 0
            while time.monotonic() < deadline and all(p.poll() is None for p in processes):
                waiting = blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ).fetchone()[0]  # type: ignore[index]
                if waiting >= 2:
                    break
                time.sleep(0.05)
            assert waiting >= 2 or any(p.poll() is not None for p in processes)
            blocker.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        outcomes = finish(processes)
    finally:
        if blocker is not None:
            blocker.close()

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert pg_migration_rows(empty_pg_url) == expected_rows("postgres")
    applied_lines = [out.count("applied ") for _, out in outcomes]
    assert sorted(applied_lines) == [0, len(all_versions("postgres"))], outcomes


def test_two_processes_migrate_one_new_sqlite_file(tmp_path: Path, isolated_env: Path) -> None:
    path = tmp_path / "fresh.db"
    assert not path.exists()
    processes = [spawn_migrate(sqlite_url(path), isolated_env) for _ in range(2)]
    outcomes = finish(processes)

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version"
        ).fetchall()
        counts = conn.execute(
            f"SELECT version, count(*) FROM {MIGRATIONS_TABLE} GROUP BY version"
        ).fetchall()
    assert rows == expected_rows("sqlite")
    assert all(count == 1 for _, count in counts)


def _run_snippet(code: str) -> str:
    """Run Python in a fresh process that ends with os._exit (so a leaked thread cannot hang it)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_sqlite_open_waits_for_another_writer_on_a_new_file(tmp_path: Path) -> None:
    """Deterministic form of the two-process race: a writer holds a new file's write lock for
    half a second; opening the store must wait for it (busy timeout), not fail."""
    out = _run_snippet(
        f"""
        import asyncio, os, sqlite3, threading, time
        from pathlib import Path
        from voicebook.store.sqlite import SqliteStore

        path = Path({str(tmp_path / "new.db")!r})
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()

        async def main():
            store = SqliteStore(path)
            try:
                await store.open()
            except Exception as exc:
                return f"failed: {{exc}} ({{exc.__cause__}})"
            await store.close()
            return "opened"

        print(asyncio.run(main()), flush=True)
        os._exit(0)
        """
    )
    assert out == "opened"


def test_failed_sqlite_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-database.db"
    garbage.write_bytes(os.urandom(4096))
    out = _run_snippet(
        f"""
        import asyncio, os, threading
        from pathlib import Path
        from voicebook.scheduling.errors import StoreUnavailable
        from voicebook.store.sqlite import SqliteStore

        async def main():
            try:
                await SqliteStore(Path({str(garbage)!r})).open()
            except StoreUnavailable:
                return "unavailable"
            return "opened"

        outcome = asyncio.run(main())
        for thread in threading.enumerate():  # a closed connection's thread ends promptly
            if thread is not threading.main_thread():
                thread.join(timeout=3)
        left = [t.name for t in threading.enumerate()
                if t is not threading.main_thread() and not t.daemon]
        print(outcome, left, flush=True)
        os._exit(0)
        """
    )
    assert out == "unavailable []"


# --- supabase_schema.sql ----------------------------------------------------------------------


@pytest.fixture
def second_empty_pg_url(empty_pg_url: str) -> Iterator[str]:
    """Another fresh empty database beside `empty_pg_url`."""
    import secrets

    base, _ = empty_pg_url.rsplit("/", 1)
    name = f"vb_empty_{secrets.token_hex(4)}"
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def apply_supabase_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_SCHEMA.read_text(encoding="utf-8").encode())


def test_supabase_schema_file_is_the_generated_script() -> None:
    from voicebook.store.migrations import postgres_schema_script

    assert SUPABASE_SCHEMA.read_text(encoding="utf-8") == postgres_schema_script()


def test_supabase_schema_equals_the_migrated_schema(
    empty_pg_url: str, second_empty_pg_url: str
) -> None:
    apply_supabase_schema(empty_pg_url)
    pg_migrate(second_empty_pg_url)

    from_file, migrated = pg_schema(empty_pg_url), pg_schema(second_empty_pg_url)
    assert sorted(from_file) == sorted(migrated)
    for table in migrated:
        for kind in ("columns", "constraints", "indexes", "triggers"):
            assert from_file[table][kind] == migrated[table][kind], (table, kind)
    assert pg_extensions(empty_pg_url) == pg_extensions(second_empty_pg_url)
    assert pg_migration_rows(empty_pg_url) == pg_migration_rows(second_empty_pg_url)
    assert pg_migration_rows(empty_pg_url) == expected_rows("postgres")


def test_migrate_after_supabase_schema_applies_nothing(
    empty_pg_url: str, isolated_env: Path
) -> None:
    apply_supabase_schema(empty_pg_url)
    schema, rows = pg_schema(empty_pg_url), pg_migration_rows(empty_pg_url, with_time=True)

    code, output = cli("db", "migrate", "--database-url", empty_pg_url)
    assert code == 0, output
    assert "applied 0" not in output
    assert "is up to date" in output
    assert pg_schema(empty_pg_url) == schema
    assert pg_migration_rows(empty_pg_url, with_time=True) == rows

    code, output = cli("db", "status", "--database-url", empty_pg_url)
    assert code == 0, output
    assert "│ pending" not in output
    assert "│ applied" in output


# --- db status through the CLI ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_db_status_shows_pending_then_applied(
    kind: str, isolated_env: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = sqlite_url(isolated_env.parent / "status.db")
    else:
        url = request.getfixturevalue("empty_pg_url")
    migrations = load_migrations("sqlite" if kind == "sqlite" else "postgres")

    code, before = cli("db", "status", "--database-url", url)
    assert code == 0, before
    for migration in migrations:
        assert f"{migration.version:04d} │ {migration.name} │ pending" in before, before
    assert "│ applied" not in before
    assert "voicebook db migrate" in before

    code, output = cli("db", "migrate", "--database-url", url)
    assert code == 0, output
    for migration in migrations:
        assert f"applied {migration.version:04d} {migration.name}" in output

    code, after = cli("db", "status", "--database-url", url)
    assert code == 0, after
    for migration in migrations:
        assert f"{migration.version:04d} │ {migration.name} │ applied" in after, after
    assert "│ pending" not in after


# --- the database guards overlaps -------------------------------------------------------------

T0 = "2027-03-02T15:00:00.000Z"
T30 = "2027-03-02T15:30:00.000Z"
T15 = "2027-03-02T15:15:00.000Z"
T45 = "2027-03-02T15:45:00.000Z"
T60 = "2027-03-02T16:00:00.000Z"
NOW = "2027-03-01T13:00:00.000Z"


def test_sqlite_overlap_trigger_refuses_raw_inserts(sqlite_path: Path) -> None:
    sqlite_migrate(sqlite_path)
    conn = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        triggers = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'trigger' AND tbl_name = 'resource_holds'"
            )
        }
        assert {"resource_holds_no_overlap_insert", "resource_holds_no_overlap_update"} <= triggers
        conn.execute(
            "INSERT INTO users (id, phone, created_at, updated_at)"
            " VALUES ('u1', '+14155550123', ?, ?)",
            (NOW, NOW),
        )

        def hold(
            id_: str, start: str, end: str, active: bool = True, resource: str = "default"
        ) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO appointments (id, user_id, resource, starts_at, ends_at,"
                " status, created_at, updated_at) VALUES (?, 'u1', ?, ?, ?, ?, ?, ?)",
                (id_, resource, start, end, "confirmed" if active else "cancelled", NOW, NOW),
            )
            conn.execute(
                "INSERT INTO resource_holds (appointment_id, resource, blocked_from,"
                " blocked_until, active) VALUES (?, ?, ?, ?, ?)",
                (id_, resource, start, end, int(active)),
            )

        hold("a1", T0, T30)
        with pytest.raises(sqlite3.IntegrityError, match="resource_holds_no_overlap"):
            hold("a2", T15, T45)
        with pytest.raises(sqlite3.IntegrityError, match="resource_holds_no_overlap"):
            hold("a3", T0, T30)
        hold("a4", T30, T60)  # back to back is fine
        hold("c1", T15, T45, active=False)  # inactive holds (cancelled) may overlap
        hold("c2", T0, T30, active=False)
        hold("r1", T15, T45, resource="other")  # another resource
        hold("a1", T0, T30, resource="room-1")  # one appointment, a second resource (a room)
        # Re-activating an overlapping hold is refused too (the update trigger).
        with pytest.raises(sqlite3.IntegrityError, match="resource_holds_no_overlap"):
            conn.execute("UPDATE resource_holds SET active = 1 WHERE appointment_id = 'c1'")
        with pytest.raises(sqlite3.IntegrityError, match="resource_holds_no_overlap"):
            conn.execute(
                "UPDATE resource_holds SET blocked_from = ?, blocked_until = ?"
                " WHERE appointment_id = 'a4'",
                (T15, T45),
            )
        active = conn.execute(
            "SELECT appointment_id, resource FROM resource_holds WHERE active = 1"
            " ORDER BY appointment_id, resource"
        ).fetchall()
        assert active == [("a1", "default"), ("a1", "room-1"), ("a4", "default"), ("r1", "other")]
    finally:
        conn.close()


def test_postgres_exclusion_constraint_refuses_raw_inserts(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT contype::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conname = 'resource_holds_no_overlap'"
            " AND conrelid = 'resource_holds'::regclass"
        ).fetchone()
        assert row is not None, "exclusion constraint resource_holds_no_overlap is missing"
        contype, definition = row
        assert contype == "x"
        assert "gist" in definition
        assert "tstzrange(blocked_from, blocked_until, '[)'::text) WITH &&" in definition
        assert "WHERE (active)" in definition

        conn.execute(
            "INSERT INTO users (id, phone, created_at, updated_at)"
            " VALUES ('u1', '+14155550123', %s, %s)",
            (NOW, NOW),
        )

        def hold(
            id_: str, start: str, end: str, active: bool = True, resource: str = "default"
        ) -> None:
            conn.execute(
                "INSERT INTO appointments (id, user_id, resource, starts_at, ends_at, status,"
                " created_at, updated_at) VALUES (%s, 'u1', %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (id_, resource, start, end, "confirmed" if active else "cancelled", NOW, NOW),
            )
            conn.execute(
                "INSERT INTO resource_holds (appointment_id, resource, blocked_from,"
                " blocked_until, active) VALUES (%s, %s, %s, %s, %s)",
                (id_, resource, start, end, active),
            )

        hold("a1", T0, T30)
        with pytest.raises(psycopg.errors.ExclusionViolation):
            hold("a2", T15, T45)
        with pytest.raises(psycopg.errors.ExclusionViolation):
            hold("a3", T0, T30)
        hold("a4", T30, T60)  # back to back is fine: '[)' ranges
        hold("c1", T15, T45, active=False)  # inactive holds (cancelled) may overlap
        hold("c2", T0, T30, active=False)
        hold("r1", T15, T45, resource="other")  # another resource
        hold("a1", T0, T30, resource="room-1")  # one appointment, a second resource (a room)
        with pytest.raises(psycopg.errors.ExclusionViolation):
            conn.execute("UPDATE resource_holds SET active = true WHERE appointment_id = 'c1'")
        active = conn.execute(
            "SELECT appointment_id, resource FROM resource_holds WHERE active"
            " ORDER BY appointment_id, resource"
        ).fetchall()
        assert active == [("a1", "default"), ("a1", "room-1"), ("a4", "default"), ("r1", "other")]
