"""Benchmark C: the HTTP API on loopback with a Postgres store, against a bare FastAPI INSERT.

Issue: *HTTP on loopback, Postgres store: book_appointment and fetch_slots p50/p99 and throughput
at 1 and 50 concurrent clients, against a bare FastAPI endpoint that does one INSERT on the same
database, measured in the same run: target ratio ≤ 2.0 for book_appointment.*

- voicebook: a real `python -m voicebook serve` (1 worker, uvicorn, default log level) on a
  temporary migrated Postgres database, rules open around the clock, 5-minute slots, no notice,
  120-day horizon (about 34,000 slots), pool size 50. One session per client is started and
  identified over HTTP beforehand. Each client is an `httpx.AsyncClient` (one keep-alive
  connection) in a closed loop. First `POST /tools/fetch_slots {session_id}` (the agent's
  default: the next 5 free slots) on a calendar of 1,000 confirmed bookings seeded over the
  horizon; then `POST /tools/book_appointment {session_id, slot_id}`, each call a distinct free
  slot (shuffled), each with a fresh `Idempotency-Key` (fetch_slots too).
- bare: the FastAPI app `create_bare_app` below, served by uvicorn in a subprocess (1 worker,
  default log level), whose `POST /insert` runs one `INSERT INTO appointments` in one transaction
  through a psycopg `AsyncConnectionPool` of the same size, on the same database and table, with
  the same users and sessions (valid foreign keys), into a disjoint span of time 400 days ahead,
  and answers a small JSON.

The two servers never run at once (each may hold 50 Postgres connections). ratio = bare ops/s ÷
voicebook ops/s at the same number of clients; target ≤ 2.0 for book_appointment.

Run this file as `python benchmarks/http_loopback.py serve-bare --port P --database-url URL` to
serve the bare app alone (that is how the benchmark starts it).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from rich.table import Table

from harness import Load, Slots, console, rules, run_load, temporary_postgres, verdict
from serving import Process, Spec, free_port, running, voicebook_argv
from voicebook.scheduling.availability import parse_slot_id
from voicebook.scheduling.ids import new_appointment_id

CLIENTS = (1, 50)
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


@dataclass
class Phases:
    warmup_s: float
    book_s: float
    fetch_s: float
    bare_s: float


FULL = Phases(warmup_s=1.0, book_s=3.5, fetch_s=2.5, bare_s=3.5)
QUICK = Phases(warmup_s=0.3, book_s=1.2, fetch_s=1.0, bare_s=1.2)


@dataclass
class Caller:
    session_id: str
    user_id: str


@dataclass
class Measured:
    """A load run plus the CPU both sides spent on it (warm-up included, per completed call)."""

    load: Load
    calls: int
    server_cpu_s: float
    client_cpu_s: float

    @property
    def server_ms_per_call(self) -> float:
        return self.server_cpu_s / self.calls * 1e3 if self.calls else math.nan

    @property
    def client_ms_per_call(self) -> float:
        return self.client_cpu_s / self.calls * 1e3 if self.calls else math.nan


@dataclass
class Level:
    clients: int
    book: Measured
    fetch: Measured
    bare: Measured

    def ratio(self, measured: Measured) -> float:
        if not measured.load.ops_per_s:
            return math.inf
        return self.bare.load.ops_per_s / measured.load.ops_per_s


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
    pass


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise HttpError(
            f"{response.request.url.path} → {response.status_code}: {response.text[:300]}"
        )
    return response


async def open_sessions(base_url: str, count: int) -> list[Caller]:
    """`count` sessions started and identified over HTTP, one per client."""
    callers = []
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as client:
        for i in range(count):
            started = _check(await client.post("/session/start", json={})).json()
            session_id = started["session_id"]
            identified = _check(
                await client.post(
                    "/tools/identify_user",
                    json={"session_id": session_id, "phone": f"+1212736{i:04d}", "name": f"C {i}"},
                    headers={"Idempotency-Key": f"identify-{session_id}"},
                )
            ).json()
            callers.append(Caller(session_id, identified["user"]["id"]))
    return callers


async def measure(
    process: Process,
    clients: int,
    call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    warmup_s: float,
    duration_s: float,
) -> Measured:
    """`clients` closed-loop clients, each with its own keep-alive connection, calling `call`."""
    connections = [
        httpx.AsyncClient(
            base_url=process.url,
            timeout=HTTP_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in range(clients)
    ]
    completed = 0

    async def op(task: int) -> None:
        nonlocal completed
        _check(await call(connections[task], task))
        completed += 1

    try:
        server_cpu, client_cpu = process.cpu_seconds(), time.process_time()
        load = await run_load(op, concurrency=clients, warmup_s=warmup_s, duration_s=duration_s)
        server_cpu = process.cpu_seconds() - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        for connection in connections:
            await connection.aclose()
    return Measured(load, completed, server_cpu, client_cpu)


@dataclass
class VoicebookRun:
    book: dict[int, Measured]
    fetch: dict[int, Measured]
    callers: list[Caller]


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


async def run_voicebook(url: str, workdir: Path, phases: Phases) -> VoicebookRun:
    """fetch_slots at every level on a calendar of CALENDAR bookings, then book_appointment."""
    now = datetime.now(timezone.utc)
    slots = Slots(RULES, now, not_before=now + timedelta(hours=1))
    keys = itertools.count()
    env = {**SERVER_ENV, "VOICEBOOK_DATABASE_URL": url}
    port = free_port()
    async with running([Spec("voicebook", voicebook_argv(port), port, env)], workdir) as [server]:
        callers = await open_sessions(server.url, max(CLIENTS))
        await seed_calendar(url, slots, callers[0], CALENDAR)

        async def book(client: httpx.AsyncClient, task: int) -> httpx.Response:
            return await client.post(
                "/tools/book_appointment",
                json={"session_id": callers[task].session_id, "slot_id": slots.take()},
                headers={"Idempotency-Key": f"book-{next(keys)}"},
            )

        async def fetch(client: httpx.AsyncClient, task: int) -> httpx.Response:
            return await client.post(
                "/tools/fetch_slots",
                json={"session_id": callers[task].session_id},
                headers={"Idempotency-Key": f"fetch-{next(keys)}"},
            )

        fetched = {
            clients: await measure(server, clients, fetch, phases.warmup_s, phases.fetch_s)
            for clients in CLIENTS
        }
        booked = {
            clients: await measure(server, clients, book, phases.warmup_s, phases.book_s)
            for clients in CLIENTS
        }
    return VoicebookRun(booked, fetched, callers)


async def run_bare(url: str, workdir: Path, callers: list[Caller], phases: Phases):
    port = free_port()
    results: dict[int, Measured] = {}
    async with running([Spec("bare", bare_argv(port, url), port)], workdir) as [server]:

        async def insert(client: httpx.AsyncClient, task: int) -> httpx.Response:
            caller = callers[task]
            return await client.post(
                "/insert", json={"user_id": caller.user_id, "session_id": caller.session_id}
            )

        for clients in CLIENTS:
            results[clients] = await measure(
                server, clients, insert, phases.warmup_s, phases.bare_s
            )
    return results


# --- presentation ---------------------------------------------------------------------------------


def render(levels: list[Level]) -> None:
    table = Table(
        title="C · HTTP on loopback, Postgres: voicebook serve vs a bare FastAPI INSERT",
        caption=(
            "Closed loop: each client (an httpx.AsyncClient, one keep-alive connection) sends its "
            f"next request when the last one returns; 1 uvicorn worker each side, pool size "
            f"{POOL_SIZE}.\nratio = bare ops/s ÷ voicebook ops/s at the same clients; target ≤ "
            f"{RATIO_TARGET:.1f} for book_appointment (fetch_slots: for information).\n"
            "srv / cli CPU ms: CPU time of the server process (/proc) and of this load generator "
            "per completed call, warm-up included (Postgres not counted); CPU ratio = voicebook "
            "server ÷ bare server CPU per call,\nwhich the load generator's own cost does not "
            "blur (at 50 clients all processes share the CPUs). fetch_slots (no date: the next 5 "
            f"slots) runs first, with {CALENDAR:,} confirmed bookings seeded over the 120-day "
            "horizon."
        ),
        caption_justify="left",
    )
    for name, justify in [
        ("clients", "right"),
        ("endpoint", "left"),
        ("ops", "right"),
        ("errors", "right"),
        ("ops/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("srv CPU ms", "right"),
        ("cli CPU ms", "right"),
        ("ratio", "right"),
        ("CPU ratio", "right"),
        ("target", "left"),
        ("result", "center"),
    ]:
        table.add_column(name, justify=justify, no_wrap=name in ("endpoint", "target"))  # type: ignore[arg-type]
    for level in levels:
        rows = [
            ("book_appointment", level.book, "target"),
            ("fetch_slots", level.fetch, "info"),
            ("bare /insert", level.bare, "baseline"),
        ]
        for index, (label, measured, role) in enumerate(rows):
            load = measured.load
            ratio = level.ratio(measured)
            cpu_ratio = measured.server_ms_per_call / level.bare.server_ms_per_call
            table.add_row(
                str(level.clients) if index == 0 else "",
                label,
                f"{load.ops:,}",
                str(load.errors),
                f"{load.ops_per_s:,.0f}",
                f"{load.p50_ms:.2f}",
                f"{load.p99_ms:.2f}",
                f"{measured.server_ms_per_call:.2f}",
                f"{measured.client_ms_per_call:.2f}",
                "1.00" if role == "baseline" else f"{ratio:.2f}",
                "1.00" if role == "baseline" else f"{cpu_ratio:.2f}",
                {"target": f"≤ {RATIO_TARGET:.2f}", "info": "info", "baseline": "baseline"}[role],
                verdict(ratio <= RATIO_TARGET) if role == "target" else "",
                end_section=role == "baseline",
            )
    console.print(table)
    for level in levels:
        for label, measured in [
            ("book_appointment", level.book),
            ("fetch_slots", level.fetch),
            ("bare insert", level.bare),
        ]:
            if measured.load.first_error:
                console.print(
                    f"[red]{measured.load.errors} {label} error(s) at {level.clients} client(s), "
                    f"first:[/red] {measured.load.first_error}"
                )


async def run(quick: bool) -> None:
    phases = QUICK if quick else FULL
    async with temporary_postgres("vb_bench_http") as url:
        with tempfile.TemporaryDirectory(prefix="vb_bench_http_") as tmp:
            workdir = Path(tmp)
            voicebook = await run_voicebook(url, workdir, phases)
            bare = await run_bare(url, workdir, voicebook.callers, phases)
    levels = [Level(c, voicebook.book[c], voicebook.fetch[c], bare[c]) for c in CLIENTS]
    render(levels)


if __name__ == "__main__":
    _serve_bare()
