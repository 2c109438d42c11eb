"""Shared pieces of the benchmarks: timing statistics, temporary databases, rules, tables."""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import psycopg
from rich.console import Console

from voicebook.scheduling.availability import AvailabilityRules, free_slots, slot_id
from voicebook.scheduling.hours import parse_hours
from voicebook.store.postgres import PostgresStore

ADMIN_URL = os.environ.get(
    "VOICEBOOK_BENCH_POSTGRES_URL",
    os.environ.get("VOICEBOOK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"),
)
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 13, 0, tzinfo=timezone.utc)
"""The fixed clock of every benchmark: Monday 2027-03-01 08:00 in New York, as in the tests."""

console = Console(width=None if Console().is_terminal else 132)


class Unavailable(Exception):
    """A service a benchmark needs (Postgres) cannot be reached: the benchmark is skipped."""


def fixed_clock() -> datetime:
    return NOW


def rules(hours: str, *, slot: int, horizon: int, notice: int) -> AvailabilityRules:
    return AvailabilityRules(
        zone=NEW_YORK,
        weekly=parse_hours(hours),
        slot_minutes=slot,
        buffer_minutes=0,
        min_notice_minutes=notice,
        horizon_days=horizon,
    )


class Slots:
    """Distinct free slot ids of `rules` from `now`, at `not_before` or later, handed out once
    each in a shuffled (but repeatable) order."""

    def __init__(
        self, rules: AvailabilityRules, now: datetime, not_before: datetime | None = None
    ) -> None:
        starts = [
            s.start
            for s in free_slots(rules, now, [])
            if not_before is None or s.start >= not_before
        ]
        random.Random(7).shuffle(starts)
        self._ids = iter([slot_id(start) for start in starts])
        self.total = len(starts)

    def take(self) -> str:
        try:
            return next(self._ids)
        except StopIteration:
            raise RuntimeError(f"all {self.total} slots are booked; widen the rules") from None


# --- statistics -----------------------------------------------------------------------------------


def percentile(samples: list[float], pct: int) -> float:
    """The `pct`-th percentile (1..99) of at least two samples."""
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


@dataclass
class Timing:
    """Per-call wall times in seconds."""

    samples: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) * 1e6

    @property
    def p95_us(self) -> float:
        return percentile(self.samples, 95) * 1e6


async def time_calls(
    call: Callable[[], Awaitable[object]], *, warmup: int, iterations: int
) -> Timing:
    """Time `iterations` sequential awaits of `call()` after `warmup` untimed ones."""
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return Timing(samples)


def time_sync(call: Callable[[], object], *, warmup: int, iterations: int) -> Timing:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return Timing(samples)


@dataclass
class Load:
    """What a closed-loop load run measured: latencies of the ops started in the measured phase."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    first_error: str | None = None

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1e3 if self.latencies else math.nan

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1e3 if len(self.latencies) > 1 else math.nan


async def run_load(
    op: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> Load:
    """`concurrency` tasks each await `op(task_index)` back to back: a warm-up phase, then a
    measured phase. Throughput counts the ops started in the measured phase over the time until
    the last of them finished; an exception counts as an error and is not timed.
    """
    load = Load()
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    async def worker(index: int) -> None:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            try:
                await op(index)
            except Exception as exc:
                if began >= measure_from:
                    load.errors += 1
                    load.first_error = load.first_error or f"{type(exc).__name__}: {exc}"
                continue
            if began >= measure_from:
                load.latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    load.elapsed = time.perf_counter() - measure_from
    return load


# --- Postgres -------------------------------------------------------------------------------------


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@asynccontextmanager
async def temporary_postgres(prefix: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own, dropped afterwards; yields its URL."""
    try:
        admin = await psycopg.AsyncConnection.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise Unavailable(f"Postgres at {ADMIN_URL}: {str(exc).strip().splitlines()[0]}") from exc
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = database_url(name)
        store = PostgresStore(url, check_schema=False)
        await store.open()
        try:
            await store.migrate()
        finally:
            await store.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# --- presentation ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[yellow]MISS[/yellow]"


def us(value: float) -> str:
    return f"{value:,.0f}"
