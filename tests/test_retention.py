"""Retention (DESIGN §5, issue 9): ended sessions, their events and transcripts (and their
verification codes and idempotency keys) are deleted after VOICEBOOK_RETENTION_DAYS; appointments
stay, no longer linked to the session. Open sessions and recently ended ones are kept.

On SQLite and Postgres: the store's batch (`prune_ended_sessions`), the server's housekeeping round,
and `voicebook db prune` as a real subprocess. Time is the `clock` fixture or explicit instants.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from commands import Outcome
from conftest import Clock
from helpers import call
from servers import clean_env
from voicebook.config import Settings
from voicebook.scheduling.errors import SessionNotFound
from voicebook.scheduling.service import SchedulingService, utc_now
from voicebook.server.app import housekeeping_round
from voicebook.store.retention import prune_ended, retention_cutoff

DAYS = 90


# --- seeding and looking ---------------------------------------------------------------------


async def sql(store: Any, text: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a query (or [] for a write), in a transaction of the store under test."""
    async with store.transaction() as tx:
        if text.lstrip().upper().startswith("SELECT"):
            return await tx._fetch(text, **params)
        await tx._execute(text, **params)
        return []


async def count(store: Any, table: str, column: str, value: str) -> int:
    rows = await sql(store, f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = :v", v=value)
    return int(rows[0]["n"])


@dataclass
class Seeded:
    session_id: str
    appointment_id: str | None


async def conversation(
    service: SchedulingService, clock: Clock, phone: str, *, book: bool = True, end: bool = True
) -> Seeded:
    """A session with a caller, a booking, transcript lines, keyed tool calls and a verification
    code row; ended (by the page) unless `end` is False."""
    store = service.store
    session = await service.start_session()
    await call(service, "identify_user", session.id, phone=phone, name="Pat Doe")
    appointment_id = None
    if book:
        slots = await call(service, "fetch_slots", session.id, limit=1)
        booked = await call(service, "book_appointment", session.id, slot_id=slots.slots[0].slot_id)
        appointment_id = booked.appointment.id
    await service.report(
        {
            "session_id": session.id,
            "transcript": [
                {"role": "user", "text": f"my number is {phone}", "final": True},
                {"role": "agent", "text": "Thank you.", "final": True},
            ],
        },
        f"report-{session.id}",
    )
    now = clock()
    await sql(
        store,
        "INSERT INTO verification_codes (id, session_id, phone, code_hash, attempts, created_at,"
        " expires_at) VALUES (:id, :session_id, :phone, 'salt$hash', 0, :created_at, :expires_at)",
        id=f"vc-{session.id}",
        session_id=session.id,
        phone="+14155550123",
        created_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    if end:
        clock.advance(minutes=5)
        await service.end_session(session.id, reason="page")
    return Seeded(session.id, appointment_id)


async def assert_gone(service: SchedulingService, seeded: Seeded) -> None:
    store = service.store
    with pytest.raises(SessionNotFound):
        await service.get_session(seeded.session_id)
    assert await count(store, "session_events", "session_id", seeded.session_id) == 0
    assert await count(store, "verification_codes", "session_id", seeded.session_id) == 0
    assert await count(store, "idempotency_keys", "scope", seeded.session_id) == 0
    if seeded.appointment_id:  # the appointment stays, no longer linked to the session
        appointment = await appointment_row(store, seeded.appointment_id)
        assert appointment["session_id"] is None
        assert appointment["status"] == "confirmed"
        assert appointment["name"] == "Pat Doe"


async def assert_kept(service: SchedulingService, seeded: Seeded, *, keys: bool = True) -> None:
    """Still there; `keys=False` where housekeeping forgot the idempotency keys after 24 h."""
    store = service.store
    _, user = await service.get_session(seeded.session_id)
    assert user is not None
    events = await service.session_events(seeded.session_id)
    assert "transcript" in {e.type for e in events}
    assert await count(store, "verification_codes", "session_id", seeded.session_id) == 1
    if keys:
        assert await count(store, "idempotency_keys", "scope", seeded.session_id) > 0
    if seeded.appointment_id:
        appointment = await appointment_row(store, seeded.appointment_id)
        assert appointment["session_id"] == seeded.session_id


async def appointment_row(store: Any, appointment_id: str) -> dict[str, Any]:
    rows = await sql(store, "SELECT * FROM appointments WHERE id = :id", id=appointment_id)
    assert len(rows) == 1
    return rows[0]


async def scenario(service: SchedulingService, clock: Clock) -> dict[str, Seeded]:
    """Two sessions that ended long ago (one without a booking), one still open from then, and
    one that ended recently; the clock is left `DAYS` + 10 days after the start."""
    start = clock()
    seeded = {
        "old": await conversation(service, clock, "415 555 0123"),
        "old_no_booking": await conversation(service, clock, "415 555 0124", book=False),
        "open": await conversation(service, clock, "415 555 0125", end=False),
    }
    clock.now = start + timedelta(days=DAYS - 5)
    seeded["recent"] = await conversation(service, clock, "415 555 0126")
    clock.now = start + timedelta(days=DAYS + 10)
    return seeded


# --- the store's batch -------------------------------------------------------------------------


async def test_prune_deletes_old_ended_sessions_and_keeps_the_rest(
    service: SchedulingService, clock: Clock
) -> None:
    seeded = await scenario(service, clock)
    before = retention_cutoff(clock(), DAYS)

    async with service.store.transaction() as tx:
        removed = await tx.prune_ended_sessions(before, 100)

    assert removed == 2
    await assert_gone(service, seeded["old"])
    await assert_gone(service, seeded["old_no_booking"])
    await assert_kept(service, seeded["recent"])
    await assert_kept(service, seeded["open"])
    appointments = await sql(service.store, "SELECT id FROM appointments")
    assert len(appointments) == 3  # every appointment is still there
    async with service.store.transaction() as tx:
        assert await tx.prune_ended_sessions(before, 100) == 0  # nothing more to do


async def test_prune_works_in_batches_oldest_first(
    service: SchedulingService, clock: Clock
) -> None:
    seeded = await scenario(service, clock)
    before = retention_cutoff(clock(), DAYS)

    async with service.store.transaction() as tx:
        assert await tx.prune_ended_sessions(before, 1) == 1
    await assert_gone(service, seeded["old"])  # it ended first
    await service.get_session(seeded["old_no_booking"].session_id)

    assert await prune_ended(service.store, before, batch=1) == 1
    await assert_gone(service, seeded["old_no_booking"])
    assert await prune_ended(service.store, before, batch=1) == 0


async def test_prune_ended_stops_after_max_batches(
    service: SchedulingService, clock: Clock
) -> None:
    await scenario(service, clock)
    before = retention_cutoff(clock(), DAYS)

    assert await prune_ended(service.store, before, batch=1, max_batches=1) == 1
    assert await prune_ended(service.store, before, batch=1, max_batches=5) == 1
    assert await prune_ended(service.store, before) == 0


async def test_a_session_ended_just_inside_retention_is_kept(
    service: SchedulingService, clock: Clock
) -> None:
    seeded = await conversation(service, clock, "415 555 0199")
    ended, _ = await service.get_session(seeded.session_id)
    assert ended.ended_at is not None

    async with service.store.transaction() as tx:
        assert await tx.prune_ended_sessions(ended.ended_at, 100) == 0  # strictly before
        assert await tx.prune_ended_sessions(ended.ended_at + timedelta(milliseconds=1), 9) == 1
    await assert_gone(service, seeded)


# --- the server's housekeeping -----------------------------------------------------------------


async def test_the_housekeeping_round_prunes_too(service: SchedulingService, clock: Clock) -> None:
    seeded = await scenario(service, clock)
    ctx = SimpleNamespace(
        settings=Settings(retention_days=DAYS, session_idle_minutes=15),
        store=service.store,
        service=service,
    )

    done = await housekeeping_round(ctx)  # type: ignore[arg-type]

    assert done.pruned_sessions == 2
    await assert_gone(service, seeded["old"])
    await assert_gone(service, seeded["old_no_booking"])
    await assert_kept(service, seeded["recent"], keys=False)
    # The open one was idle: this round ended it (now), so retention keeps it for DAYS more.
    assert done.ended == 1
    session, _ = await service.get_session(seeded["open"].session_id)
    assert (session.state, session.end_reason) == ("ended", "idle")
    assert (await housekeeping_round(ctx)).pruned_sessions == 0  # type: ignore[arg-type]

    clock.advance(days=DAYS + 1)
    later = await housekeeping_round(ctx)  # type: ignore[arg-type]
    assert later.pruned_sessions == 2
    for name in ("open", "recent"):
        await assert_gone(service, seeded[name])
    assert len(await sql(service.store, "SELECT id FROM appointments")) == 3


def test_retention_days_setting() -> None:
    assert Settings().retention_days == 90
    assert Settings(retention_days=7).retention_days == 7
    with pytest.raises(ValueError, match="retention_days"):
        Settings(retention_days=0)


# --- `voicebook db prune` ----------------------------------------------------------------------


def prune_cli(tmp_path: Path, *args: str) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", "db", "prune", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(),
        check=False,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def database_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    if store_kind == "sqlite":
        return f"sqlite:///{request.getfixturevalue('sqlite_path')}"
    return request.getfixturevalue("pg_url")


async def test_db_prune_cli(
    service: SchedulingService, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    # The command's clock is the wall clock: seed against it, far enough from either boundary.
    clock.now = utc_now() - timedelta(days=DAYS + 10)
    seeded = await scenario(service, clock)  # "recent" ended DAYS - 5 days after the start
    assert clock() <= utc_now()

    first = prune_cli(tmp_path, "--json", "--database-url", database_url)

    assert first.code == 0, first
    report = first.json()
    assert report["removed_sessions"] == 2
    assert report["days"] == DAYS
    assert datetime.fromisoformat(report["before"]) < utc_now() - timedelta(days=DAYS - 1)
    await assert_gone(service, seeded["old"])
    await assert_gone(service, seeded["old_no_booking"])
    await assert_kept(service, seeded["recent"])
    await assert_kept(service, seeded["open"])

    again = prune_cli(tmp_path, "--json", "--database-url", database_url)
    assert again.code == 0, again
    assert again.json()["removed_sessions"] == 0

    # --days overrides VOICEBOOK_RETENTION_DAYS; the plain output says how many went.
    shorter = prune_cli(tmp_path, "--days", "1", "--database-url", database_url)
    assert shorter.code == 0, shorter
    assert "removed 1 session that ended before" in shorter.text
    await assert_gone(service, seeded["recent"])
    await assert_kept(service, seeded["open"])
    assert len(await sql(service.store, "SELECT id FROM appointments")) == 3


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_db_prune_reads_the_retention_setting(
    service: SchedulingService, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    clock.now = utc_now() - timedelta(days=20)
    seeded = await conversation(service, clock, "415 555 0123")
    env = {"VOICEBOOK_DATABASE_URL": database_url}

    def run(days: str) -> Outcome:
        result = subprocess.run(
            [sys.executable, "-m", "voicebook", "db", "prune", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=clean_env(env, VOICEBOOK_RETENTION_DAYS=days),
            check=False,
        )
        return Outcome(result.returncode, result.stdout, result.stderr)

    kept = run("30")
    assert (kept.code, kept.json()["removed_sessions"], kept.json()["days"]) == (0, 0, 30)
    await assert_kept(service, seeded)
    removed = run("10")
    assert (removed.code, removed.json()["removed_sessions"]) == (0, 1)
    await assert_gone(service, seeded)


def test_db_prune_usage_and_unreachable_database(tmp_path: Path) -> None:
    for args in (("--days", "0"), ("--days", "soon")):
        outcome = prune_cli(tmp_path, *args)
        assert outcome.code == 2, outcome
    bad_setting = subprocess.run(
        [sys.executable, "-m", "voicebook", "db", "prune"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(VOICEBOOK_RETENTION_DAYS="0"),
        check=False,
    )
    assert bad_setting.returncode == 2
    assert "VOICEBOOK_RETENTION_DAYS" in " ".join(bad_setting.stderr.split())
    unreachable = prune_cli(tmp_path, "--database-url", "postgresql://root@127.0.0.1:1/x")
    assert unreachable.code == 3, unreachable
    assert "Cannot reach the database" in unreachable.text


def test_cutoff_is_whole_days_back() -> None:
    now = datetime(2027, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert retention_cutoff(now, 90) == datetime(2027, 3, 3, 12, 0, tzinfo=timezone.utc)
