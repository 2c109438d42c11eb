"""Benchmark A: fetch_slots over a 14-day horizon as the store grows from 100 to 100k bookings.

The store holds N confirmed appointments of one resource. A fixed set of them (`IN_WINDOW`) lies
inside the 14-day search window, as a busy calendar would; the rest are spread over eight years
of past and two years of future outside it. A store that fetches only the window sees the same
rows at every N, so the time per call should stay flat while N grows a thousandfold.

Three things are timed per N, each call on its own:
- service: `SchedulingService.available_slots(on=None, limit=200)` — a read transaction, the
  window query, the engine and the wire models (what `fetch_slots` does minus session bookkeeping);
- query: a read transaction running only `busy_between` over the search window;
- engine: the pure `free_slots` over the busy list that query returned.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
from rich.table import Table

from harness import (
    NOW,
    Timing,
    console,
    fixed_clock,
    rules,
    temporary_postgres,
    time_calls,
    time_sync,
    us,
    verdict,
)
from voicebook.scheduling.availability import Interval, free_slots, search_window
from voicebook.scheduling.service import SchedulingService
from voicebook.store.postgres import PostgresStore
from voicebook.store.sqlite import SqliteStore, format_instant

SIZES = (100, 1_000, 10_000, 100_000)
IN_WINDOW = 40
"""Bookings inside the 14-day window at every N (about a quarter of its ~175 slots)."""
LIMIT = 200
"""More than the horizon holds, so every call walks the whole 14 days."""
RULES = rules("mon-fri 09:00-17:00, sat 10:00-14:00", slot=30, horizon=14, notice=60)
WINDOW = search_window(RULES, NOW)
RESOURCE = "default"
USER_ID = "usr_bench"
PAST = timedelta(days=8 * 365)
FUTURE = timedelta(days=2 * 365)
GRID = timedelta(minutes=30)
MARGIN = timedelta(days=2)
"""Outside bookings keep this far from the window, so none of them is fetched."""
FLAT_TARGET = 1.5
"""Near-flat: the median at any N at most this many times the median at N=100."""
ABSOLUTE_TARGET_US = 2_000.0
ABSOLUTE_AT = 10_000
COLUMNS = "id, user_id, resource, starts_at, ends_at, status, name, created_at, updated_at"
BUSY_SQL = (
    "SELECT starts_at, ends_at FROM appointments WHERE resource = {p}"
    " AND status = 'confirmed' AND starts_at >= {p} AND starts_at < {p}"
    " AND ends_at > {p} ORDER BY starts_at"
)
"""`busy_between`'s query (store/sql.py), for showing the plan each database picks."""


@dataclass
class Iterations:
    """Per N: `rounds` × (`service` service calls, as many queries, `engine` engine calls)."""

    sizes: tuple[int, ...]
    rounds: int
    service: int
    engine: int
    warmup: int


FULL = Iterations(SIZES, rounds=10, service=30, engine=100, warmup=30)
QUICK = Iterations(SIZES[:-1], rounds=6, service=20, engine=60, warmup=10)
"""Quick leaves out 100k: seeding it alone takes 5-15 s (the overlap trigger / constraint)."""


@dataclass
class Measured:
    n: int
    fetched: int
    slots: int
    service: Timing
    query: Timing
    engine: Timing


def seed_intervals(max_n: int, rng: random.Random) -> list[Interval]:
    """`max_n` non-overlapping 30-minute bookings: `IN_WINDOW` on the window's own grid first,
    then the rest in random order on a 30-minute UTC grid outside the window (±MARGIN)."""
    horizon = free_slots(RULES, NOW, [])
    inside = sorted(rng.sample(horizon, IN_WINDOW))
    base = (NOW - PAST).replace(minute=0, second=0, microsecond=0)
    total = (PAST + FUTURE) // GRID
    gap_lo = (WINDOW.start - MARGIN - base) // GRID
    gap_hi = (WINDOW.end + MARGIN - base) // GRID + 1
    picks = rng.sample(range(total - (gap_hi - gap_lo)), max_n - IN_WINDOW)
    outside = []
    for pick in picks:
        index = pick if pick < gap_lo else pick + (gap_hi - gap_lo)
        start = base + index * GRID
        outside.append(Interval(start, start + GRID))
    return inside + outside


def rows(intervals: list[Interval], encode: Callable[[object], object]) -> list[tuple]:
    now = encode(NOW)
    return [
        (
            f"apt_seed{i:08d}",
            USER_ID,
            RESOURCE,
            encode(iv.start),
            encode(iv.end),
            "confirmed",
            "Seeded",
            now,
            now,
        )
        for i, iv in enumerate(intervals)
    ]


@dataclass
class Prepared:
    """One database holding N bookings, open as a store."""

    n: int
    store: SqliteStore | PostgresStore
    plan: str


def sqlite_rows_in(path: Path, sql: str, values: list[tuple]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 15000")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, values)
        conn.execute("COMMIT")
    finally:
        conn.close()


def sqlite_plan(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "EXPLAIN QUERY PLAN " + BUSY_SQL.format(p="?"),
            (
                RESOURCE,
                format_instant(WINDOW.start - timedelta(days=1)),
                format_instant(WINDOW.end),
                format_instant(WINDOW.start),
            ),
        ).fetchall()
    finally:
        conn.close()
    return "; ".join(row[-1] for row in found)


class SqliteBackend:
    name = "SQLite"

    def __init__(self, root: Path) -> None:
        self.root = root

    @asynccontextmanager
    async def seeded(self, n: int, intervals: list[Interval]) -> AsyncIterator[Prepared]:
        path = self.root / f"bench-{n}.db"
        async with SqliteStore(path) as store:  # migrates the new file
            now = format_instant(NOW)
            user = (USER_ID, "+12127360000", "Bench", now, now)
            await asyncio.to_thread(
                sqlite_rows_in, path, "INSERT INTO users VALUES (?, ?, ?, ?, ?)", [user]
            )
            await asyncio.to_thread(
                sqlite_rows_in,
                path,
                f"INSERT INTO appointments ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(sorted(intervals[:n]), format_instant),  # type: ignore[arg-type]
            )
            yield Prepared(n, store, await asyncio.to_thread(sqlite_plan, path))


class PostgresBackend:
    name = "Postgres"

    @asynccontextmanager
    async def seeded(self, n: int, intervals: list[Interval]) -> AsyncIterator[Prepared]:
        async with temporary_postgres(f"vb_bench_slots_{n}") as url:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(
                    "INSERT INTO users VALUES (%s, %s, %s, %s, %s)",
                    (USER_ID, "+12127360000", "Bench", NOW, NOW),
                )
                cur = conn.cursor()
                async with cur.copy(f"COPY appointments ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows(intervals[:n], lambda v: v):
                        await copy.write_row(row)
                # A live table is analysed by autovacuum; do it now so the plan matches that.
                await conn.execute("ANALYZE appointments")
                cur = await conn.execute(
                    "EXPLAIN " + BUSY_SQL.format(p="%s"),
                    (RESOURCE, WINDOW.start - timedelta(days=1), WINDOW.end, WINDOW.start),
                )
                lines = [row[0].strip() for row in await cur.fetchall()]
            plan = " / ".join(line for line in lines if not line.startswith("Filter"))
            async with PostgresStore(url) as store:
                yield Prepared(n, store, plan)


class Probe:
    """The three timed calls against one prepared database, with their samples so far."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.store = prepared.store
        self.service = SchedulingService(prepared.store, RULES, clock=fixed_clock)  # type: ignore[arg-type]
        self.samples: dict[str, list[float]] = {"service": [], "query": [], "engine": []}
        self.busy: list[Interval] = []
        self.slots = 0

    async def query(self) -> list[Interval]:
        async with self.store.transaction(write=False) as tx:
            return await tx.busy_between(RESOURCE, WINDOW)

    async def available(self) -> object:
        return await self.service.available_slots(on=None, limit=LIMIT)

    def engine(self) -> object:
        return free_slots(RULES, NOW, self.busy, limit=LIMIT)

    async def warm(self, it: Iterations) -> None:
        self.busy = await self.query()
        self.slots = len((await self.service.available_slots(on=None, limit=LIMIT)).slots)
        await time_calls(self.available, warmup=it.warmup, iterations=0)
        await time_calls(self.query, warmup=it.warmup, iterations=0)
        time_sync(self.engine, warmup=it.warmup, iterations=0)

    async def round(self, it: Iterations) -> None:
        timed = await time_calls(self.available, warmup=0, iterations=it.service)
        self.samples["service"] += timed.samples
        timed = await time_calls(self.query, warmup=0, iterations=it.service)
        self.samples["query"] += timed.samples
        self.samples["engine"] += time_sync(self.engine, warmup=0, iterations=it.engine).samples

    def result(self) -> Measured:
        return Measured(
            n=self.prepared.n,
            fetched=len(self.busy),
            slots=self.slots,
            service=Timing(self.samples["service"]),
            query=Timing(self.samples["query"]),
            engine=Timing(self.samples["engine"]),
        )


async def measure(backend: SqliteBackend | PostgresBackend, it: Iterations) -> list[Measured]:
    """Seed one database per N, then time them in interleaved rounds (rotating which N goes
    first), so drift and noise on a shared machine fall on every N alike."""
    intervals = seed_intervals(max(it.sizes), random.Random(20270301))
    async with AsyncExitStack() as stack:
        started = time.perf_counter()
        prepared = [await stack.enter_async_context(backend.seeded(n, intervals)) for n in it.sizes]
        seeding = time.perf_counter() - started
        probes = [Probe(p) for p in prepared]
        for probe in probes:
            await probe.warm(it)
        for r in range(it.rounds):
            shift = r % len(probes)
            for probe in probes[shift:] + probes[:shift]:
                await probe.round(it)
        results = [probe.result() for probe in probes]
    render(backend.name, results, prepared[-1].plan, seeding)
    return results


def render(backend: str, results: list[Measured], plan: str, seeding: float) -> None:
    table = Table(
        title=f"A · fetch_slots, 14-day horizon, {backend} — time per call vs bookings in store",
        caption=(
            f"{IN_WINDOW} bookings inside the window at every N, the rest spread over 10 years "
            f"outside it (seeding took {seeding:.1f} s). Rounds interleave the N. "
            f"×N=100: median ÷ median at N=100 (target ≤ {FLAT_TARGET}×). "
            f"Absolute target: service and engine under {us(ABSOLUTE_TARGET_US)} µs at "
            f"N={ABSOLUTE_AT:,}.\nPlan of the window query at N={results[-1].n:,}: {plan}"
        ),
        caption_justify="left",
    )
    for name, justify in [
        ("N in store", "right"),
        ("fetched", "right"),
        ("slots", "right"),
        ("measured", "left"),
        ("median µs", "right"),
        ("p95 µs", "right"),
        ("×N=100", "right"),
        ("target", "left"),
        ("flat", "center"),
        ("< 2 ms @10k", "center"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    base = results[0]
    for r in results:
        for label, timing, baseline, absolute in [
            ("service available_slots", r.service, base.service, True),
            ("query busy_between", r.query, base.query, False),
            ("engine free_slots", r.engine, base.engine, True),
        ]:
            ratio = timing.median_us / baseline.median_us
            target = f"≤ {FLAT_TARGET:.2f}×"
            abs_cell = ""
            if absolute and r.n == ABSOLUTE_AT:
                target += f", < {us(ABSOLUTE_TARGET_US)} µs"
                abs_cell = verdict(timing.median_us < ABSOLUTE_TARGET_US)
            table.add_row(
                f"{r.n:,}" if label.startswith("service") else "",
                str(r.fetched) if label.startswith("service") else "",
                str(r.slots) if label.startswith("service") else "",
                label,
                us(timing.median_us),
                us(timing.p95_us),
                f"{ratio:.2f}×",
                target,
                verdict(ratio <= FLAT_TARGET),
                abs_cell,
                end_section=label.startswith("engine"),
            )
    console.print(table)


async def run_sqlite(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="vb-bench-") as tmp:
        await measure(SqliteBackend(Path(tmp)), QUICK if quick else FULL)


async def run_postgres(quick: bool) -> None:
    await measure(PostgresBackend(), QUICK if quick else FULL)
