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

Then services and staff (issue 11): the same service call for a business of 10 staff and 3
services ('anyone' and one named staff member) against the single calendar (1 resource, 1
service), and a series over 1, 3, 10 and 30 staff, each store holding the same 10k bookings dealt
over its staff; the 1 × 1 baseline is timed in the same interleaved rounds as the rest.

Seeded rows go into `appointments` and `resource_holds` (one hold per booking, as the store's own
booking path writes them): since migration 0006 the busy query reads only the holds.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
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
from voicebook.models import DEFAULT_SLOTS, FetchSlotsResponse
from voicebook.scheduling.availability import Interval, free_slots, search_window
from voicebook.scheduling.business import Business, Resource, Service
from voicebook.scheduling.hours import parse_hours
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
HOLD_COLUMNS = "appointment_id, resource, blocked_from, blocked_until, active"
"""Since migration 0006 the busy query reads `resource_holds`, so seeded rows need their holds."""
BUSY_SQL = (
    "SELECT resource, blocked_from, blocked_until FROM resource_holds WHERE resource IN ({p})"
    " AND active = {p} AND blocked_from >= {p} AND blocked_from < {p}"
    " AND blocked_until > {p} ORDER BY blocked_from"
)
"""`busy_for`'s query (store/sql.py) for one resource, for showing the plan each database picks."""
MAX_BLOCKED = timedelta(days=2)
"""The store's lower bound on a hold's start (store/sql.py `MAX_BLOCKED`), for the plan."""


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


Booking = tuple[str, Interval]
"""A seeded confirmed appointment: the resource it holds and its span (no buffers)."""


def rows(bookings: list[Booking], encode: Callable[[object], object]) -> list[tuple]:
    now = encode(NOW)
    return [
        (
            f"apt_seed{i:08d}",
            USER_ID,
            resource,
            encode(iv.start),
            encode(iv.end),
            "confirmed",
            "Seeded",
            now,
            now,
        )
        for i, (resource, iv) in enumerate(bookings)
    ]


def hold_rows(
    bookings: list[Booking], encode: Callable[[object], object], active: object
) -> list[tuple]:
    """The `resource_holds` row of each booking of `rows` (same ids): the store's own booking
    path writes one per resource held, and the busy query reads only these."""
    return [
        (f"apt_seed{i:08d}", resource, encode(iv.start), encode(iv.end), active)
        for i, (resource, iv) in enumerate(bookings)
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


def sqlite_plan(path: Path, resource: str) -> str:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "EXPLAIN QUERY PLAN " + BUSY_SQL.format(p="?"),
            (
                resource,
                1,
                format_instant(WINDOW.start - MAX_BLOCKED),
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
    async def seeded(self, name: str, bookings: list[Booking]) -> AsyncIterator[Prepared]:
        path = self.root / f"bench-{name}.db"
        ordered = sorted(bookings, key=lambda b: b[1])  # the overlap trigger likes locality
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
                rows(ordered, format_instant),  # type: ignore[arg-type]
            )
            await asyncio.to_thread(
                sqlite_rows_in,
                path,
                f"INSERT INTO resource_holds ({HOLD_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                hold_rows(ordered, format_instant, 1),  # type: ignore[arg-type]
            )
            plan = await asyncio.to_thread(sqlite_plan, path, bookings[0][0])
            yield Prepared(len(bookings), store, plan)


class PostgresBackend:
    name = "Postgres"

    @asynccontextmanager
    async def seeded(self, name: str, bookings: list[Booking]) -> AsyncIterator[Prepared]:
        async with temporary_postgres(f"vb_bench_slots_{name}") as url:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(
                    "INSERT INTO users VALUES (%s, %s, %s, %s, %s)",
                    (USER_ID, "+12127360000", "Bench", NOW, NOW),
                )
                cur = conn.cursor()
                async with cur.copy(f"COPY appointments ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows(bookings, lambda v: v):
                        await copy.write_row(row)
                async with cur.copy(f"COPY resource_holds ({HOLD_COLUMNS}) FROM STDIN") as copy:
                    for row in hold_rows(bookings, lambda v: v, True):
                        await copy.write_row(row)
                # A live table is analysed by autovacuum; do it now so the plan matches that.
                await conn.execute("ANALYZE appointments")
                await conn.execute("ANALYZE resource_holds")
                cur = await conn.execute(
                    "EXPLAIN " + BUSY_SQL.format(p="%s"),
                    (
                        bookings[0][0],
                        True,
                        WINDOW.start - MAX_BLOCKED,
                        WINDOW.end,
                        WINDOW.start,
                    ),
                )
                lines = [row[0].strip() for row in await cur.fetchall()]
            plan = " / ".join(line for line in lines if not line.startswith("Filter"))
            async with PostgresStore(url) as store:
                yield Prepared(len(bookings), store, plan)


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
        prepared = [
            await stack.enter_async_context(
                backend.seeded(str(n), [(RESOURCE, iv) for iv in intervals[:n]])
            )
            for n in it.sizes
        ]
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


# --- services and staff: 10 staff × 3 services against 1 × 1, and the cost per staff member -------

COMPARE_N = 10_000
"""Bookings in every store of the comparison (the issue's reference size), spread over its staff."""
STAFF_COUNTS = (1, 3, 10, 30)
MAIN_STAFF = 10
SERVICES = (
    Service("cut", "Cut", 30),
    Service("colour", "Colour", 90, buffer_before=10, buffer_after=15),
    Service("consult", "Consultation", 45, buffer_after=15),
)
"""The baseline's 30-minute length, a long one with buffers on both sides, one with a buffer
after: three different steps between slot starts (30, 115 and 60 minutes)."""
SERIES_SERVICE = "cut"
"""The series asks for the baseline's length, so only the number of staff changes along it."""
STAFF_HOURS = (
    parse_hours("mon-fri 09:00-17:00, sat 10:00-14:00"),
    parse_hours("mon-fri 09:00-13:00, sat 10:00-14:00"),
    parse_hours("tue-fri 12:00-17:00"),
)
"""Staff member i works STAFF_HOURS[i % 3], all within the business's week and the first one the
whole of it: 'anyone' answers the same ~176 starts at any number of staff, so the rows differ in
the work per staff member, not in the size of the answer."""
LIMITS = (LIMIT, DEFAULT_SLOTS)
"""The whole horizon (as the table above) and the agent's default: the next five free slots."""


@dataclass
class CompareIterations:
    """Per case: `rounds` × `calls` timed service calls, after `warmup` untimed ones."""

    rounds: int
    calls: int
    warmup: int


COMPARE_FULL = CompareIterations(rounds=8, calls=6, warmup=3)
COMPARE_QUICK = CompareIterations(rounds=4, calls=4, warmup=2)


def staff_id(index: int) -> str:
    return f"staff-{index:02d}"


def staff_business(count: int) -> Business:
    """`count` staff members who all give the three services, each on their own week."""
    staff = tuple(
        Resource(
            staff_id(i),
            f"Staff {i:02d}",
            "staff",
            frozenset(service.id for service in SERVICES),
            STAFF_HOURS[i % len(STAFF_HOURS)],
        )
        for i in range(count)
    )
    return Business(rules=RULES, services=SERVICES, resources=staff)


@dataclass
class Case:
    """One kind of call: `available_slots` of one business on one store, with its samples.

    The call is the service's own (read transaction, one busy query per widening of the span,
    the engine per staff member, the 'anyone' choice and the wire models), as in the rows above.
    """

    business: str
    staff_count: int
    limit: int
    scheduling: SchedulingService
    service: str | None = None
    staff: str | None = None
    samples: list[float] = field(default_factory=list)
    slots: int = 0
    busy: int = 0

    @property
    def who(self) -> str:
        return "—" if self.scheduling.business.single else self.staff or "anyone"

    @property
    def what(self) -> str:
        return self.scheduling.business.service(self.service).id

    async def call(self) -> FetchSlotsResponse:
        return await self.scheduling.available_slots(
            on=None, limit=self.limit, service=self.service, staff=self.staff
        )

    async def warm(self, it: CompareIterations) -> None:
        """Count what the call answers and what it reads (the busy spans of the staff it asks
        about over the whole search window), then warm it up untimed."""
        self.slots = len((await self.call()).slots)
        business = self.scheduling.business
        people = business.staff_for(business.service(self.service), self.staff)
        async with self.scheduling.store.transaction(write=False) as tx:
            found = await tx.busy_for([person.id for person in people], WINDOW)
        self.busy = sum(len(spans) for spans in found.values())
        await time_calls(self.call, warmup=it.warmup, iterations=0)

    @property
    def timing(self) -> Timing:
        return Timing(self.samples)


def cases_for(staff_count: int, store: SqliteStore | PostgresStore) -> list[Case]:
    """The calls measured on the store whose bookings are spread over `staff_count` staff."""
    business = staff_business(staff_count)

    def scheduling(business: Business | None = None) -> SchedulingService:
        return SchedulingService(
            store,  # type: ignore[arg-type]
            RULES,
            resource=staff_id(0),
            clock=fixed_clock,
            business=business,
        )

    label = f"{staff_count} × {len(SERVICES)}"
    cases: list[Case] = []
    for limit in LIMITS:
        if staff_count == 1:  # the baseline: the single calendar, as without a business file
            cases.append(Case("1 × 1", 1, limit, scheduling()))
        if staff_count == MAIN_STAFF:
            for service in SERVICES:
                cases.append(Case(label, staff_count, limit, scheduling(business), service.id))
            named = business.staff[0].name
            cases.append(Case(label, staff_count, limit, scheduling(business), "cut", named))
        else:
            cases.append(Case(label, staff_count, limit, scheduling(business), SERIES_SERVICE))
    return cases


async def compare(backend: SqliteBackend | PostgresBackend, it: CompareIterations) -> None:
    """One store per staff count, each with COMPARE_N bookings dealt round-robin over its staff
    (the same spans in every store, so the store size and the busy rows in the window are the
    same); every case, the 1 × 1 baseline included, is timed in the same interleaved rounds."""
    intervals = seed_intervals(COMPARE_N, random.Random(20270302))
    async with AsyncExitStack() as stack:
        started = time.perf_counter()
        cases: list[Case] = []
        for count in STAFF_COUNTS:
            bookings = [(staff_id(i % count), iv) for i, iv in enumerate(intervals)]
            prepared = await stack.enter_async_context(backend.seeded(f"staff{count}", bookings))
            cases += cases_for(count, prepared.store)
        seeding = time.perf_counter() - started
        for case in cases:
            await case.warm(it)
        for r in range(it.rounds):
            shift = r % len(cases)
            for case in cases[shift:] + cases[:shift]:
                case.samples += (await time_calls(case.call, warmup=0, iterations=it.calls)).samples
    render_compare(backend.name, cases, seeding)
    render_series(backend.name, cases)


def baseline_of(cases: list[Case], limit: int) -> Case:
    return next(c for c in cases if c.business == "1 × 1" and c.limit == limit)


def render_compare(backend: str, cases: list[Case], seeding: float) -> None:
    services = ", ".join(
        f"{s.id} {s.minutes} min (−{s.buffer_before}/+{s.buffer_after})" for s in SERVICES
    )
    table = Table(
        title=(
            f"A · fetch_slots, {MAIN_STAFF} staff × {len(SERVICES)} services vs 1 resource × "
            f"1 service, {backend} — {COMPARE_N:,} bookings in each store"
        ),
        caption=(
            f"Services: {services}; "
            f"staff hours vary (three weekly patterns within the business's). The bookings are "
            f"dealt round-robin over the staff: {IN_WINDOW} inside the window in every store "
            f"(seeding the {len(STAFF_COUNTS)} stores took {seeding:.1f} s). busy rows: holds of "
            f"the staff asked about in the 14-day window. ×1×1: median ÷ the 1 × 1 median at the "
            f"same limit, same rounds."
        ),
        caption_justify="left",
    )
    for name, justify in [
        ("limit", "right"),
        ("business", "left"),
        ("service", "left"),
        ("staff", "left"),
        ("busy rows", "right"),
        ("slots", "right"),
        ("median µs", "right"),
        ("p95 µs", "right"),
        ("×1×1", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for limit in LIMITS:
        base = baseline_of(cases, limit)
        shown = [base] + [c for c in cases if c.staff_count == MAIN_STAFF and c.limit == limit]
        for i, case in enumerate(shown):
            table.add_row(
                str(limit) if i == 0 else "",
                case.business,
                case.what,
                case.who,
                str(case.busy),
                str(case.slots),
                us(case.timing.median_us),
                us(case.timing.p95_us),
                f"{case.timing.median_us / base.timing.median_us:.2f}×",
                end_section=i == len(shown) - 1,
            )
    console.print(table)


def growth(cases: list[Case]) -> float:
    """k in cost ∝ staff^k between the smallest and largest staff count above 1."""
    low, high = cases[1], cases[-1]
    return math.log(high.timing.median_us / low.timing.median_us) / math.log(
        high.staff_count / low.staff_count
    )


def marginal(first: Case, case: Case) -> float:
    """What each staff member beyond the first adds to a call, in µs."""
    extra = case.timing.median_us - first.timing.median_us
    return extra / (case.staff_count - first.staff_count)


def render_series(backend: str, cases: list[Case]) -> None:
    table = Table(
        title=(
            f"A · fetch_slots vs number of staff, {backend} — '{SERIES_SERVICE}' for anyone, "
            f"{len(SERVICES)} services, {COMPARE_N:,} bookings spread over the staff"
        ),
        caption_justify="left",
    )
    for name, justify in [
        ("limit", "right"),
        ("business", "left"),
        ("busy rows", "right"),
        ("slots", "right"),
        ("median µs", "right"),
        ("p95 µs", "right"),
        ("×1×1", "right"),
        ("×1 staff", "right"),
        ("+µs per extra staff", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    notes = []
    for limit in LIMITS:
        base = baseline_of(cases, limit)
        series = [
            c
            for c in cases
            if c.limit == limit
            and c.business != "1 × 1"
            and c.what == SERIES_SERVICE
            and c.staff is None
        ]
        first = series[0]
        for i, case in enumerate([base, *series]):
            median = case.timing.median_us
            table.add_row(
                str(limit) if i == 0 else "",
                case.business,
                str(case.busy),
                str(case.slots),
                us(median),
                us(case.timing.p95_us),
                f"{median / base.timing.median_us:.2f}×",
                "" if case is base else f"{median / first.timing.median_us:.2f}×",
                "" if case in (base, first) else us(marginal(first, case)),
                end_section=i == len(series),
            )
        notes.append(
            f"limit {limit}: cost ∝ staff^{growth(series):.2f} from {series[1].staff_count} to "
            f"{series[-1].staff_count} staff"
        )
    table.caption = (
        "×1 staff: median ÷ the 1-staff business's median (same rounds); +µs per extra staff: "
        "(median − the 1-staff median) ÷ (staff − 1). Growth: "
        + "; ".join(notes)
        + " (1.00 = linear)."
    )
    console.print(table)


async def run_sqlite(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="vb-bench-") as tmp:
        await measure(SqliteBackend(Path(tmp)), QUICK if quick else FULL)
        await compare(SqliteBackend(Path(tmp)), COMPARE_QUICK if quick else COMPARE_FULL)


async def run_postgres(quick: bool) -> None:
    await measure(PostgresBackend(), QUICK if quick else FULL)
    await compare(PostgresBackend(), COMPARE_QUICK if quick else COMPARE_FULL)
