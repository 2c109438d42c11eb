"""Benchmark B: booking through the service on Postgres against a bare single-row INSERT.

Both sides write confirmed rows into the same `appointments` table of one temporary database,
through a connection pool of the same size (= the number of concurrent tasks), in the same run:

- service: `SchedulingService.run_tool("book_appointment", {session_id, slot_id}, key)` — the
  whole tool call: idempotency claim, session lock, caller lookup, rule check, overlap check, the
  insert under the exclusion constraint, the `tool_call` event and the stored answer, one
  transaction. Each task books distinct free slots (5-minute slots, open around the clock, far
  more slots than the run needs) for a session of its own, identified beforehand, so no two tasks
  queue on one session row.
- bare: one `INSERT INTO appointments (...) VALUES (...)` per transaction (autocommit connection,
  explicit `BEGIN`/`COMMIT`) through a psycopg `AsyncConnectionPool`, for the same users and
  sessions, into a disjoint span of time (the same exclusion constraint and indexes are checked).

The cost ratio is bare ops/s ÷ service ops/s: how many bare inserts the machine does in the time
of one booking. Target ≤ 2.0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool
from rich.table import Table

from harness import (
    NOW,
    Load,
    Slots,
    console,
    fixed_clock,
    rules,
    run_load,
    temporary_postgres,
    verdict,
)
from voicebook.scheduling.ids import new_appointment_id
from voicebook.scheduling.service import SchedulingService
from voicebook.store.postgres import PostgresStore

CONCURRENCY = (1, 50)
RATIO_TARGET = 2.0
RULES = rules("mon-sun 00:00-24:00", slot=5, horizon=120, notice=0)
BARE_FROM = NOW + timedelta(days=400)
"""Bare inserts start here, well past the service's horizon, so the two never collide."""
BARE_LENGTH = timedelta(minutes=5)
BARE_SQL = (
    "INSERT INTO appointments (id, user_id, resource, starts_at, ends_at, status, name, notes,"
    " session_id, created_at, updated_at)"
    " VALUES (%s, %s, 'default', %s, %s, 'confirmed', %s, NULL, %s, %s, %s)"
)


@dataclass
class Phases:
    warmup_s: float
    duration_s: float


FULL = Phases(warmup_s=1.5, duration_s=6.0)
QUICK = Phases(warmup_s=0.5, duration_s=2.0)


@dataclass
class Caller:
    session_id: str
    user_id: str


@dataclass
class Level:
    concurrency: int
    service: Load
    bare: Load

    @property
    def ratio(self) -> float:
        if not self.service.ops_per_s:
            return math.inf
        return self.bare.ops_per_s / self.service.ops_per_s


async def identify(service: SchedulingService, count: int, first: int) -> list[Caller]:
    callers = []
    for i in range(first, first + count):
        session = await service.start_session()
        outcome = await service.run_tool(
            "identify_user",
            {"session_id": session.id, "phone": f"+1212736{i:04d}", "name": f"Caller {i}"},
            f"identify-{session.id}",
        )
        callers.append(Caller(session.id, outcome.response.user.id))  # type: ignore[attr-defined]
    return callers


async def run_service(url: str, concurrency: int, slots: Slots, phases: Phases, first: int):
    async with PostgresStore(url, pool_size=concurrency) as store:
        service = SchedulingService(store, RULES, clock=fixed_clock)
        callers = await identify(service, concurrency, first)
        keys = itertools.count()

        async def book(task: int) -> None:
            await service.run_tool(
                "book_appointment",
                {"session_id": callers[task].session_id, "slot_id": slots.take()},
                f"book-{next(keys)}",
            )

        load = await run_load(
            book, concurrency=concurrency, warmup_s=phases.warmup_s, duration_s=phases.duration_s
        )
    return load, callers


async def run_bare(
    url: str, concurrency: int, callers: list[Caller], phases: Phases, counter: itertools.count
) -> Load:
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=concurrency, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    try:

        async def insert(task: int) -> None:
            start = BARE_FROM + next(counter) * BARE_LENGTH
            caller = callers[task]
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(
                    BARE_SQL,
                    (
                        new_appointment_id(),
                        caller.user_id,
                        start,
                        start + BARE_LENGTH,
                        "Bare",
                        caller.session_id,
                        NOW,
                        NOW,
                    ),
                )

        return await run_load(
            insert, concurrency=concurrency, warmup_s=phases.warmup_s, duration_s=phases.duration_s
        )
    finally:
        await pool.close()


def render(levels: list[Level]) -> None:
    table = Table(
        title="B · book_appointment via the service vs bare INSERT, Postgres, same table",
        caption=(
            "Closed loop: each task starts its next call when the last one returns; pool size = "
            "tasks.\nratio = bare ops/s ÷ service ops/s (the cost of one booking in bare "
            f"inserts); target ≤ {RATIO_TARGET:.1f}."
        ),
        caption_justify="left",
    )
    for name, justify in [
        ("tasks", "right"),
        ("path", "left"),
        ("ops", "right"),
        ("errors", "right"),
        ("ops/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("result", "center"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for level in levels:
        for label, load in [
            ("service book_appointment", level.service),
            ("bare INSERT", level.bare),
        ]:
            service_row = load is level.service
            table.add_row(
                str(level.concurrency) if service_row else "",
                label,
                f"{load.ops:,}",
                str(load.errors),
                f"{load.ops_per_s:,.0f}",
                f"{load.p50_ms:.2f}",
                f"{load.p99_ms:.2f}",
                f"{level.ratio:.2f}" if service_row else "1.00",
                f"≤ {RATIO_TARGET:.2f}" if service_row else "baseline",
                verdict(level.ratio <= RATIO_TARGET) if service_row else "",
                end_section=not service_row,
            )
    console.print(table)
    for level in levels:
        for label, load in [("service", level.service), ("bare", level.bare)]:
            if load.first_error:
                console.print(
                    f"[red]{load.errors} {label} error(s) at {level.concurrency} task(s), first:"
                    f"[/red] {load.first_error}"
                )


async def run(quick: bool) -> None:
    phases = QUICK if quick else FULL
    levels = []
    async with temporary_postgres("vb_bench_book") as url:
        slots = Slots(RULES, NOW)
        counter = itertools.count()
        first = 0
        for concurrency in CONCURRENCY:
            service, callers = await run_service(url, concurrency, slots, phases, first)
            first += concurrency
            bare = await run_bare(url, concurrency, callers, phases, counter)
            levels.append(Level(concurrency, service, bare))
    render(levels)
