"""Shared fixtures: real SQLite files, a real Postgres database per test, a settable clock.

Postgres and Redis are the machine's real servers. Without them a test skips with one line saying
why — unless VOICEBOOK_REQUIRE_SERVICES=1 (set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.hours import parse_hours
from voicebook.scheduling.service import SchedulingService
from voicebook.store.postgres import PostgresStore
from voicebook.store.sqlite import SqliteStore

ADMIN_URL = os.environ.get(
    "VOICEBOOK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("VOICEBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("VOICEBOOK_REQUIRE_SERVICES", "") not in ("", "0", "false")

# The suite starts hundreds of `python -m voicebook` processes. Where PYTHONDONTWRITEBYTECODE is
# set, an editable checkout never gets bytecode for voicebook's own modules, so each of them
# compiles those from source again (0.3-0.6 s of CPU a process here, a minute or more of the
# suite on 2 cores); the installed packages have theirs from pip. The processes inherit this.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="session", autouse=True)
def _own_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The commands the tests run remember things in the user's cache directory (the greeting
    of `call --text`): one of the test session's own, never the person's ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def service_missing(what: str, why: object) -> None:
    """Skip (or, under VOICEBOOK_REQUIRE_SERVICES, fail) because a real service is unreachable."""
    message = f"{what} not reachable ({why}); start it or set its VOICEBOOK_TEST_*_URL"
    if REQUIRE_SERVICES:
        pytest.fail(message + " [VOICEBOOK_REQUIRE_SERVICES is set]")
    pytest.skip(message)


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


class Clock:
    """The service's clock, set by the test (time itself is not what these tests are about)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    # Monday 2027-03-01 08:15 in New York (13:15 UTC); with an hour's notice 9:30 is the first slot.
    return Clock(datetime(2027, 3, 1, 13, 15, tzinfo=timezone.utc))


@pytest.fixture
def rules() -> AvailabilityRules:
    return AvailabilityRules(
        zone=NEW_YORK,
        weekly=parse_hours("mon-fri 09:00-17:00, sat 10:00-14:00"),
        slot_minutes=30,
        buffer_minutes=0,
        min_notice_minutes=60,
        horizon_days=30,
    )


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test gets a fresh copy of it."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing("Postgres", str(exc).strip().splitlines()[0])
    name = f"vb_tmpl_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')

    async def migrate() -> None:
        store = PostgresStore(database_url(name), check_schema=False)
        await store.open()
        try:
            await store.migrate()
        finally:
            await store.close()

    # Session fixtures may be set up while a test's event loop runs: migrate on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test."""
    name = f"vb_test_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield database_url(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A fresh Postgres database with nothing in it (for migration tests)."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing("Postgres", str(exc).strip().splitlines()[0])
    name = f"vb_empty_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "voicebook.db"


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def store(store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """An open store of each kind: a fresh SQLite file, then a fresh Postgres database."""
    if store_kind == "sqlite":
        opened: SqliteStore | PostgresStore = SqliteStore(request.getfixturevalue("sqlite_path"))
    else:
        opened = PostgresStore(request.getfixturevalue("pg_url"))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def service(store: object, rules: AvailabilityRules, clock: Clock) -> SchedulingService:
    return SchedulingService(store, rules, default_region="US", clock=clock)  # type: ignore[arg-type]


@pytest.fixture
def redis_url() -> str:
    """The real Redis server's URL, after checking that it answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


KEEP_VARIABLES = {"VOICEBOOK_TEST_POSTGRES_URL", "VOICEBOOK_REQUIRE_SERVICES"}
"""The test suite's own settings, which an isolated command still needs."""


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For commands run in this process: a working directory without .env, no voicebook or
    Supabase settings from the outside, a throwaway HOME. Returns the working directory."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in list(os.environ):
        if (name.startswith("VOICEBOOK_") and name not in KEEP_VARIABLES) or name.startswith(
            "SUPABASE_"
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return work


@pytest.fixture
def scripted() -> Iterator[object]:
    """The local OpenAI-compatible stand-in model (tests/scripted_llm.py), with no rules yet."""
    from scripted_llm import ScriptedModel, ScriptedServer

    server = ScriptedServer(ScriptedModel()).start()
    yield server
    server.stop()
