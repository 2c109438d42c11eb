"""Benchmark C: the HTTP API on loopback with a Postgres store, against a bare FastAPI INSERT.

Issue: *HTTP on loopback, Postgres store: book_appointment and fetch_slots p50/p99 and throughput
at 1 and 50 concurrent clients, against a bare FastAPI endpoint that does one INSERT on the same
database, measured in the same run: target ratio ≤ 2.0 for book_appointment.* Issue 13: *drive
the server with a load generator that costs less than the server (wrk, with a Lua script for
distinct bookings), and report latency percentiles beside throughput.*

- voicebook: a real `python -m voicebook serve` (1 worker, uvicorn, default log level) on a
  temporary migrated Postgres database, rules open around the clock, 5-minute slots, no notice,
  120-day horizon (about 34,000 slots), pool size 50. SESSIONS_PER_CLIENT sessions per client
  are started and identified over HTTP beforehand. The load is wrk (`loadgen.py`, script
  `wrk_load.lua`): closed loop, one keep-alive connection per client. `GET /healthz` first (the
  server's HTTP floor), then `POST /tools/fetch_slots {session_id}` (the agent's default: the next
  5 free slots) on a calendar of 1,000 confirmed bookings seeded over the horizon, then
  `POST /tools/book_appointment {session_id, slot_id}`, each call a distinct free slot
  (shuffled); every tool call has its own `Idempotency-Key`, so none is a replay.
- bare: the FastAPI app `create_bare_app` below, served by uvicorn in a subprocess (1 worker,
  default log level), whose `POST /insert` runs one `INSERT INTO appointments` in one transaction
  through a psycopg `AsyncConnectionPool` of the same size, on the same database and table, with
  the same users and sessions (valid foreign keys), into a disjoint span of time 400 days ahead,
  and answers a small JSON; and its `GET /healthz`, the baseline of voicebook's.

The two servers never run at once (each may hold 50 Postgres connections). ratio = baseline
ops/s ÷ voicebook ops/s at the same number of clients (bare /insert for the tools, bare /healthz
for /healthz); target ≤ 2.0 for book_appointment.

Run this file as `python benchmarks/http_loopback.py serve-bare --port P --database-url URL` to
serve the bare app alone (that is how the benchmark starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from rich import box
from rich.table import Table

from harness import Slots, console, rules, temporary_postgres, verdict
from loadgen import Target, WrkRun, run_wrk, wrk_path
from serving import Process, Spec, free_port, running, voicebook_argv
from voicebook.scheduling.availability import parse_slot_id
from voicebook.scheduling.ids import new_appointment_id

CLIENTS = (1, 50)
SESSIONS_PER_CLIENT = 4
"""wrk hands sessions out round-robin (a request does not know its connection): with 4 sessions
per connection, two requests in flight name the same session (and queue on its row lock) only
when one is 4 rounds behind the others."""
POOL_SIZE = 50
RATIO_TARGET = 2.0
HOURS = "mon-sun 00:00-24:00"
RULES = rules(HOURS, slot=5, horizon=120, notice=0)
SERVER_ENV = {
    "VOICEBOOK_HOURS": HOURS,
    "VOICEBOOK_SLOT_MINUTES": "5",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_HORIZON_DAYS": "120",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    "VOICEBOOK_DATABASE_POOL_SIZE": str(POOL_SIZE),
}
BARE_OFFSET = timedelta(days=400)
"""The bare inserts start this far ahead, well past the 120-day horizon: no collisions."""
BARE_LENGTH = timedelta(minutes=5)
BARE_SQL = (
    "INSERT INTO appointments (id, user_id, resource, starts_at, ends_at, status, name, notes,"
    " session_id, created_at, updated_at)"
    " VALUES (%s, %s, 'default', %s, %s, 'confirmed', %s, NULL, %s, %s, %s)"
)
HTTP_TIMEOUT_S = 30.0
CALENDAR = 1_000
"""Confirmed bookings seeded over the horizon before fetch_slots is measured (about 8 a day)."""
SLOTS_PER_RUN = 7_000
"""Distinct slots handed to each booking run (warm-up and measured, at 1 and 50 clients: 4 runs
of the ~33,000 left after the calendar), several times what a run books."""


@dataclass
class Phases:
    """wrk's durations, in whole seconds (the only unit it takes)."""

    warmup_s: int
    measured_s: int


FULL = Phases(warmup_s=1, measured_s=3)
QUICK = Phases(warmup_s=1, measured_s=2)


@dataclass
class Caller:
    session_id: str
    user_id: str


@dataclass
class Measured:
    """A measured wrk run, the CPU the server spent on it, and the warm-up run before it (not
    measured; counted only in `answered`).

    The server's CPU is read from an idle server to the moment it is idle again, so it covers
    the requests wrk left in flight when it stopped (one per connection): `sent` counts them.
    """

    run: WrkRun
    server_cpu_s: float
    warmup: WrkRun
    clients: int

    @property
    def sent(self) -> int:
        return self.run.requests + self.clients

    @property
    def answered(self) -> int:
        """Requests answered without an error, warm-up included (a lower bound: wrk counts a
        read error or timeout as an error even if the server went on to commit)."""
        return sum(r.requests - r.errors for r in (self.warmup, self.run))

    @property
    def server_ms_per_call(self) -> float:
        return self.server_cpu_s / self.sent * 1e3

    @property
    def wrk_ms_per_call(self) -> float:
        return self.run.cpu_s / self.sent * 1e3

    @property
    def wrk_share(self) -> float:
        """wrk's CPU ÷ the server's: below 1 the load generator costs less than the server."""
        return self.run.cpu_s / self.server_cpu_s if self.server_cpu_s else math.nan


@dataclass
class Level:
    clients: int
    book: Measured
    fetch: Measured
    healthz: Measured
    bare: Measured
    bare_healthz: Measured


# --- the bare baseline app ------------------------------------------------------------------------


class InsertBody(BaseModel):
    user_id: str
    session_id: str


def create_bare_app(database_url: str, pool_size: int) -> FastAPI:
    """`POST /insert {user_id, session_id}`: one INSERT INTO appointments in one transaction."""
    pool = AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True},
        open=False,
    )
    counter = itertools.count()
    base = datetime.now(timezone.utc).replace(second=0, microsecond=0) + BARE_OFFSET

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/insert")
    async def insert(body: InsertBody) -> dict[str, Any]:
        start = base + next(counter) * BARE_LENGTH
        appointment_id = new_appointment_id()
        now = datetime.now(timezone.utc)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                BARE_SQL,
                (
                    appointment_id,
                    body.user_id,
                    start,
                    start + BARE_LENGTH,
                    "Bare",
                    body.session_id,
                    now,
                    now,
                ),
            )
        return {"id": appointment_id, "starts_at": start.isoformat()}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def bare_argv(port: int, database_url: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve-bare",
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--pool-size",
        str(POOL_SIZE),
    ]


def _serve_bare() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the bare INSERT baseline app.")
    parser.add_argument("command", choices=["serve-bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE)
    args = parser.parse_args()
    uvicorn.run(
        create_bare_app(args.database_url, args.pool_size),
        host="127.0.0.1",
        port=args.port,
        proxy_headers=True,
    )


# --- the load -------------------------------------------------------------------------------------


class HttpError(Exception):
    """A setup request (start or identify a session) did not answer 200."""


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise HttpError(
            f"{response.request.url.path} → {response.status_code}: {response.text[:300]}"
        )
    return response


async def open_session(client: httpx.AsyncClient, index: int) -> Caller:
    """One session started and identified over HTTP (a claimed caller may book)."""
    started = _check(await client.post("/session/start", json={})).json()
    session_id = started["session_id"]
    identified = _check(
        await client.post(
            "/tools/identify_user",
            json={"session_id": session_id, "phone": f"+1212736{index:04d}", "name": f"C {index}"},
            headers={"Idempotency-Key": f"identify-{session_id}"},
        )
    ).json()
    return Caller(session_id, identified["user"]["id"])


async def open_sessions(base_url: str, count: int) -> list[Caller]:
    """`count` sessions, opened over 10 connections at once (setup, not measured)."""
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S, limits=limits) as c:
        return list(await asyncio.gather(*(open_session(c, i) for i in range(count))))


def write_callers(callers: list[Caller], path: Path) -> Path:
    """The sessions file `wrk_load.lua` reads: `session_id user_id` per line."""
    path.write_text("".join(f"{c.session_id} {c.user_id}\n" for c in callers))
    return path


def write_slots(slots: Slots, count: int, path: Path) -> Path:
    """`count` slots nobody has been given yet, one id per line, for one wrk run."""
    path.write_text("".join(slots.take() + "\n" for _ in range(count)))
    return path


async def measure(
    server: Process,
    target: Target,
    clients: int,
    phases: Phases,
    workdir: Path,
    slots: Slots | None = None,
) -> Measured:
    """A warm-up wrk run (pool growth, prepared statements), then the measured one, on `server`,
    each time once the server has finished what the previous run left in flight.

    Booking runs get their own file of fresh slots each, so no run books a slot twice.
    """
    label = f"{target.mode}-{server.name}-{clients}"

    async def one(phase: str, seconds: int) -> WrkRun:
        prefix = f"{label}-{phase}"
        if slots is not None:
            target.slots = write_slots(slots, SLOTS_PER_RUN, workdir / f"slots-{prefix}.txt")
        return await run_wrk(
            target, connections=clients, duration_s=seconds, key_prefix=prefix, workdir=workdir
        )

    warmup = await one("warm", phases.warmup_s)
    await server.wait_idle()
    before = server.cpu_seconds()
    run = await one("run", phases.measured_s)
    await server.wait_idle()
    return Measured(run, server.cpu_seconds() - before, warmup, clients)


async def seed_calendar(url: str, slots: Slots, caller: Caller, count: int) -> None:
    """`count` confirmed bookings on random free slots of the horizon, in bulk (raw SQL)."""
    now = datetime.now(timezone.utc)
    rows = []
    for _ in range(count):
        start, _, _ = parse_slot_id(slots.take())
        rows.append(
            (
                new_appointment_id(),
                caller.user_id,
                start,
                start + BARE_LENGTH,
                "Seeded",
                caller.session_id,
                now,
                now,
            )
        )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        async with conn.cursor() as cursor, conn.transaction():
            await cursor.executemany(BARE_SQL, rows)
        await conn.execute("ANALYZE appointments")


@dataclass
class Stored:
    """The appointments the booking runs left in the database (the seeded calendar excluded)."""

    rows: int
    distinct_starts: int


async def stored_bookings(url: str) -> Stored:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*), count(DISTINCT starts_at) FROM appointments"
            " WHERE status = 'confirmed' AND name <> 'Seeded'"
        )
        rows, distinct = (await cursor.fetchone()) or (0, 0)
    return Stored(rows, distinct)


@dataclass
class VoicebookRun:
    healthz: dict[int, Measured]
    fetch: dict[int, Measured]
    book: dict[int, Measured]
    callers: Path
    stored: Stored


async def run_voicebook(url: str, workdir: Path, phases: Phases) -> VoicebookRun:
    """/healthz, then fetch_slots on a calendar of CALENDAR bookings, then book_appointment."""
    now = datetime.now(timezone.utc)
    slots = Slots(RULES, now, not_before=now + timedelta(hours=1))
    env = {**SERVER_ENV, "VOICEBOOK_DATABASE_URL": url}
    port = free_port()
    async with running([Spec("voicebook", voicebook_argv(port), port, env)], workdir) as [server]:
        callers = await open_sessions(server.url, SESSIONS_PER_CLIENT * max(CLIENTS))
        await seed_calendar(url, slots, callers[0], CALENDAR)
        path = write_callers(callers, workdir / "callers.txt")
        results: dict[str, dict[int, Measured]] = {"healthz": {}, "fetch": {}, "book": {}}
        for mode, results_of_mode in results.items():
            for clients in CLIENTS:
                results_of_mode[clients] = await measure(
                    server,
                    Target(server.url, mode, path),
                    clients,
                    phases,
                    workdir,
                    slots if mode == "book" else None,
                )
    stored = await stored_bookings(url)
    return VoicebookRun(results["healthz"], results["fetch"], results["book"], path, stored)


async def run_bare(
    url: str, workdir: Path, callers: Path, phases: Phases
) -> dict[str, dict[int, Measured]]:
    """The bare app's /insert and /healthz at every level, after voicebook has stopped."""
    port = free_port()
    results: dict[str, dict[int, Measured]] = {"insert": {}, "healthz": {}}
    async with running([Spec("bare", bare_argv(port, url), port)], workdir) as [server]:
        for mode, results_of_mode in results.items():
            for clients in CLIENTS:
                results_of_mode[clients] = await measure(
                    server, Target(server.url, mode, callers), clients, phases, workdir
                )
    return results


# --- presentation ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a measured endpoint and the baseline it is compared against."""

    label: str
    measured: Measured
    baseline: Measured | None
    judged: bool = False

    @property
    def ratio(self) -> float:
        """Baseline ops/s ÷ this endpoint's ops/s: how many baseline calls fit in one of these."""
        if self.baseline is None:
            return 1.0
        ops = self.measured.run.ops_per_s
        return self.baseline.run.ops_per_s / ops if ops else math.inf

    def per_baseline(self, value: float, base: float) -> str:
        return "1.00" if self.baseline is None else f"{value / base:.2f}"


def rows(level: Level) -> list[Row]:
    return [
        Row("bare POST /insert", level.bare, None),
        Row("book_appointment", level.book, level.bare, judged=True),
        Row("fetch_slots", level.fetch, level.bare),
        Row("bare GET /healthz", level.bare_healthz, None),
        Row("GET /healthz", level.healthz, level.bare_healthz),
    ]


COLUMNS = [
    ("clients", "right"),
    ("endpoint", "left"),
    ("err", "right"),
    ("ops/s", "right"),
    ("p50", "right"),
    ("p90", "right"),
    ("p99", "right"),
    ("max", "right"),
    ("ratio", "right"),
    ("p99 ×", "right"),
    ("srv\nCPU", "right"),
    ("wrk\nCPU", "right"),
    ("wrk/\nsrv", "right"),
    ("CPU ×", "right"),
    ("result", "center"),
]


def ms(value: float) -> str:
    """Milliseconds with three significant figures or so, to keep the table narrow."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render_stored(levels: list[Level], stored: Stored) -> None:
    """Whether every answered booking is an appointment of its own (none a replay)."""
    answered = sum(level.book.answered for level in levels)
    what = (
        f"book_appointment: {answered:,} bookings answered (warm-ups included), "
        f"{stored.rows:,} confirmed appointments stored at {stored.distinct_starts:,} "
        "distinct times"
    )
    if stored.rows >= answered and stored.distinct_starts == stored.rows:
        console.print(
            f"[green]{what}[/green]: each answer is a booking of its own (more stored than "
            "answered: requests in flight when wrk stopped)"
        )
    else:
        console.print(f"[red]{what}: fewer than answered, so some answers were replays[/red]")


def render(levels: list[Level]) -> None:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title="C · HTTP on loopback, Postgres: voicebook serve vs a bare FastAPI app, load by wrk",
        caption="\n".join(
            [
                "Load by wrk, closed loop: one keep-alive connection per client, its next request "
                "sent when the last one returned.",
                f"1 uvicorn worker each side, Postgres pool size {POOL_SIZE}. Latencies in ms.",
                "Each section's first row is its baseline (same run): bare /insert for the tools, "
                "bare /healthz for voicebook's.",
                f"ratio = baseline ops/s ÷ ops/s (target ≤ {RATIO_TARGET:.1f} for "
                "book_appointment, the others for information); p99 × = p99 ÷ the baseline's.",
                "srv / wrk CPU = CPU ms per request sent: the server process (/proc, until idle "
                "again), wrk (its rusage); measured run only.",
                "wrk/srv < 1: the load generator costs less than the server (Postgres not "
                "counted). CPU × = server CPU ÷ the baseline's.",
                f"fetch_slots (no date: the next 5 slots) reads a calendar of {CALENDAR:,} "
                "confirmed bookings over the 120-day horizon.",
                "Every booking is a distinct slot and every tool call a distinct Idempotency-Key: "
                "no request is a replay.",
            ]
        ),
        caption_justify="left",
    )
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for level in levels:
        for index, row in enumerate(rows(level)):
            run, base = row.measured.run, (row.baseline or row.measured).run
            base_cpu = (row.baseline or row.measured).server_ms_per_call
            table.add_row(
                str(level.clients) if index == 0 else "",
                row.label,
                str(run.errors),
                f"{run.ops_per_s:,.0f}",
                ms(run.p50_ms),
                ms(run.p90_ms),
                ms(run.p99_ms),
                ms(run.max_ms),
                f"{row.ratio:.2f}",
                row.per_baseline(run.p99_ms, base.p99_ms),
                f"{row.measured.server_ms_per_call:.2f}",
                f"{row.measured.wrk_ms_per_call:.2f}",
                f"{row.measured.wrk_share:.2f}",
                row.per_baseline(row.measured.server_ms_per_call, base_cpu),
                verdict(row.ratio <= RATIO_TARGET)
                if row.judged
                else ("base" if row.baseline is None else "info"),
                end_section=index == len(rows(level)) - 1,
            )
    console.print(table)
    for level in levels:
        for row in rows(level):
            if row.measured.run.first_error:
                console.print(
                    f"[red]{row.measured.run.errors} {row.label} error(s) at {level.clients} "
                    f"client(s), first:[/red] {row.measured.run.first_error}"
                )


async def run(quick: bool) -> None:
    wrk_path()  # skip at once, naming the install command, when wrk is missing
    phases = QUICK if quick else FULL
    async with temporary_postgres("vb_bench_http") as url:
        with tempfile.TemporaryDirectory(prefix="vb_bench_http_") as tmp:
            workdir = Path(tmp)
            voicebook = await run_voicebook(url, workdir, phases)
            bare = await run_bare(url, workdir, voicebook.callers, phases)
    levels = [
        Level(
            c,
            book=voicebook.book[c],
            fetch=voicebook.fetch[c],
            healthz=voicebook.healthz[c],
            bare=bare["insert"][c],
            bare_healthz=bare["healthz"][c],
        )
        for c in CLIENTS
    ]
    render(levels)
    render_stored(levels, voicebook.stored)


if __name__ == "__main__":
    _serve_bare()
