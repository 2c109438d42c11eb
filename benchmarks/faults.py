"""G: what each fault costs, against a real `voicebook serve` on Postgres and Redis, each behind
the test suite's TCP proxy (tests/tcp_proxy.py), with steady traffic through it.

Traffic: CALLERS sessions, each booking one fresh slot after another (a new Idempotency-Key
each), each followed live by a WebSocket that reconnects after `?after=<last id>` whenever it is
closed, as the page does. A fault is injected after a warm-up, lasts `seconds`, is lifted, and
the run goes on until a booking has succeeded after it, plus a tail. Reported per fault:

- the longest answer of a request that was in flight while the fault lasted (for one that is
  over at once, in the AFTER_S after it);
- requests failed (any answer but 200, or none within the client's 30 s), and which codes;
- events lost or duplicated: every event of every session's log (`GET /session/{id}/events`,
  the truth) against what its WebSocket delivered (it has `RESYNC_S` plus a margin to catch up);
- every failed request sent again with its key once the fault is over, as a client retries a
  503: how many then succeed;
- bookings whose answer and row disagree (a 200 with no confirmed row, or a row without a 200,
  counting the retries' answers);
- recovery: from the end of the fault to the first booking that succeeds after it.

Targets (the README's "Guarantees"): every answer within the transaction deadline plus a
second (a 503 `store_unavailable`, never a hang); no failed request while Postgres is up (Redis
faults and the dropped-connections blip: 0); 0 events lost or duplicated; 0 disagreements;
recovery within 5 s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import websockets
from rich.table import Table

from harness import console, temporary_postgres, verdict
from serving import REDIS_URL, Spec, check_redis, free_port, running, voicebook_argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tcp_proxy import TcpProxy  # the suite's proxy, reused as it is

CALLERS = 4
PACE_S = 0.25
"""Each caller books every quarter second (16 bookings a second in all): steady traffic that
a day of 15-minute slots per caller outlasts."""
WARM_S = 2.0
TAIL_S = 1.0
CLIENT_TIMEOUT_S = 30.0
TRANSACTION_TIMEOUT_S = 8.0  # the default VOICEBOOK_DATABASE_TRANSACTION_TIMEOUT_S
CATCH_UP_S = 20.0  # the WebSocket's resync (15 s) plus a margin
RECOVERY_TARGET_S = 5.0


@dataclass(frozen=True)
class Fault:
    name: str
    service: str  # "postgres" or "redis": which proxy it is done to
    start: str  # the proxy's method that starts it
    end: str | None  # the one that lifts it (None: it is over at once)
    seconds: float


FAULTS = [
    Fault("Postgres refuses links", "postgres", "cut", "restore", 5.0),
    # Longer than the transaction deadline, so requests in flight meet it.
    Fault("Postgres black-holed", "postgres", "hold", "release", 10.0),
    Fault("Postgres drops every link", "postgres", "reset", None, 0.0),
    Fault("Redis frozen", "redis", "hold", "release", 5.0),
    Fault("Redis refuses links", "redis", "cut", "restore", 5.0),
]
AFTER_S = 2.0
"""An instant fault's answers are watched this long after it (the requests it caught)."""


@dataclass
class Attempt:
    slot: str
    key: str
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no answer within the client's timeout
    code: str | None = None
    appointment_id: str | None = None


@dataclass
class Caller:
    session_id: str
    slots: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


@dataclass
class Outcome:
    fault: Fault
    longest_s: float
    requests: int
    failed: Counter[str]
    lost: int
    duplicated: int
    disagreements: int
    """Bookings answered 200 (first or on the retry with the same key) with no confirmed row,
    and confirmed rows no 200 answered: 0, or a write reported the wrong way."""
    unsettled: int
    """Failed requests whose retry with the same key did not succeed either."""
    recovery_s: float | None


def via_proxy(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{proxy.host}:{proxy.port}"))


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


async def open_caller(http: httpx.AsyncClient, index: int, day: int) -> Caller:
    started = (await http.post("/session/start", json={})).json()
    session_id = started["session_id"]
    await http.post(
        "/tools/identify_user",
        json={"session_id": session_id, "phone": f"+1212555{index:04d}"},
        headers={"Idempotency-Key": f"identify-{session_id}"},
    )
    found = await http.post(
        "/tools/fetch_slots",
        json={"session_id": session_id, "date": f"2027-03-{day:02d}", "limit": 200},
        headers={"Idempotency-Key": f"slots-{session_id}"},
    )
    return Caller(session_id, [s["slot_id"] for s in found.json()["slots"]])


async def book_loop(http: httpx.AsyncClient, caller: Caller, stop: asyncio.Event) -> None:
    for n, slot in enumerate(caller.slots):
        if stop.is_set():
            return
        attempt = Attempt(slot, f"book-{caller.session_id}-{n}", time.monotonic())
        caller.attempts.append(attempt)
        await send(http, caller, attempt)
        await asyncio.sleep(PACE_S)


async def send(http: httpx.AsyncClient, caller: Caller, attempt: Attempt) -> None:
    """One booking request (again, with its key, for a retry); its answer in `attempt`."""
    try:
        answer = await http.post(
            "/tools/book_appointment",
            json={"session_id": caller.session_id, "slot_id": attempt.slot},
            headers={"Idempotency-Key": attempt.key},
        )
    except httpx.HTTPError:
        attempt.ended = time.monotonic()
        return
    attempt.ended = time.monotonic()
    attempt.status = answer.status_code
    body = answer.json()
    if answer.status_code == 200:
        attempt.appointment_id = body["appointment"]["id"]
    else:
        attempt.code = body.get("error", {}).get("code", f"http_{answer.status_code}")


async def follow(ws_url: str, caller: Caller, stop: asyncio.Event) -> None:
    """The page's socket: every event once, in order, reconnecting after the last id."""
    while not stop.is_set():
        after = caller.received[-1] if caller.received else 0
        try:
            async with websockets.connect(f"{ws_url}?after={after}", open_timeout=5) as socket:
                async for message in socket:
                    event = json.loads(message)
                    if isinstance(event.get("id"), int):
                        caller.received.append(event["id"])
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.3)


async def until(condition: Callable[[], bool], within: float) -> None:
    """Until `condition()` holds, or `within` seconds have passed (what was reached is then
    reported, not raised)."""
    deadline = time.monotonic() + within
    while True:
        if condition() or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.05)


async def log_ids(http: httpx.AsyncClient, session_id: str) -> list[int]:
    answer = await http.get(f"/session/{session_id}/events", params={"limit": 500})
    answer.raise_for_status()
    return [event["id"] for event in answer.json()]


def confirmed_rows(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id FROM appointments WHERE status = 'confirmed'").fetchall()
    return {row[0] for row in rows}


async def run_fault(fault: Fault, database_url: str, workdir: Path) -> Outcome:
    await check_redis()
    with (
        TcpProxy(*target_of(database_url)) as pg_proxy,
        TcpProxy(*target_of(REDIS_URL)) as redis_proxy,
    ):
        proxies = {"postgres": pg_proxy, "redis": redis_proxy}
        env = {
            "VOICEBOOK_DATABASE_URL": via_proxy(database_url, pg_proxy),
            "VOICEBOOK_REDIS_URL": via_proxy(REDIS_URL, redis_proxy),
            "VOICEBOOK_TIMEZONE": "America/New_York",
            "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
            "VOICEBOOK_SLOT_MINUTES": "15",
            "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
            "VOICEBOOK_HORIZON_DAYS": "400",
            "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
            "VOICEBOOK_RATE_LIMIT_PER_ADDRESS": "1000000/minute",
            "VOICEBOOK_RATE_LIMIT_PER_SESSION": "1000000/minute",
            "VOICEBOOK_LOG_LEVEL": "warning",
        }
        port = free_port()
        spec = Spec("voicebook", voicebook_argv(port), port, env)
        async with (
            running([spec], workdir) as (server,),
            httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as http,
        ):
            callers = [await open_caller(http, i, 2 + i) for i in range(CALLERS)]
            stop_booking, stop_following = asyncio.Event(), asyncio.Event()
            followers = [
                asyncio.create_task(follow(f"{server.ws_url}/session/{c.session_id}/events", c,
                                           stop_following))
                for c in callers
            ]  # fmt: skip
            bookers = [asyncio.create_task(book_loop(http, c, stop_booking)) for c in callers]
            await asyncio.sleep(WARM_S)
            proxy = proxies[fault.service]
            began = time.monotonic()
            getattr(proxy, fault.start)()
            await asyncio.sleep(fault.seconds)
            if fault.end:
                getattr(proxy, fault.end)()
            lifted = time.monotonic()

            def succeeded_after() -> list[Attempt]:
                return [a for c in callers for a in c.attempts
                        if a.status == 200 and a.started >= lifted]  # fmt: skip

            await until(lambda: bool(succeeded_after()), CLIENT_TIMEOUT_S)
            await asyncio.sleep(TAIL_S)
            stop_booking.set()
            await asyncio.gather(*bookers)

            # The page's view against the log: let the sockets catch up (resync included).
            logs = {c.session_id: await log_ids(http, c.session_id) for c in callers}
            await until(
                lambda: all(set(logs[c.session_id]) <= set(c.received) for c in callers),
                CATCH_UP_S,
            )
            stop_following.set()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)

            # What a client does with a 503: the same request again, with its key, once the
            # database is back. An outcome the fault left unknown is settled by it.
            retries = [
                (c, Attempt(a.slot, a.key, time.monotonic()))
                for c in callers
                for a in c.attempts
                if a.status != 200
            ]
            for caller, retry in retries:
                await send(http, caller, retry)

        attempts = [a for c in callers for a in c.attempts]
        watched = max(lifted, began + AFTER_S)
        during = [a for a in attempts if a.started <= watched and (a.ended or lifted) >= began]
        failed = Counter(a.code or "no answer" for a in attempts if a.status != 200)
        lost = sum(len(set(logs[c.session_id]) - set(c.received)) for c in callers)
        duplicated = sum(len(c.received) - len(set(c.received)) for c in callers)
        answered = {a.appointment_id for a in attempts if a.appointment_id}
        answered |= {r.appointment_id for _, r in retries if r.appointment_id}
        unsettled = sum(r.status != 200 for _, r in retries)
        rows = confirmed_rows(database_url)
        firsts = succeeded_after()
        return Outcome(
            fault,
            max((a.ended - a.started for a in during), default=0.0),
            len(attempts),
            failed,
            lost,
            duplicated,
            len(answered ^ rows),
            unsettled,
            min(a.ended for a in firsts) - lifted if firsts else None,
        )


def render(outcomes: list[Outcome]) -> None:
    table = Table(title="G: per fault, steady bookings from 4 callers each followed by a WebSocket")
    table.add_column("fault", min_width=22)
    for column in ("for", "longest", "sent"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("failed", no_wrap=True)
    for column in ("lost/twice", "answer≠row", "retried ok", "back in", "target"):
        table.add_column(column, justify="right", no_wrap=True)
    for o in outcomes:
        postgres_down = o.fault.service == "postgres" and o.fault.end is not None
        failed_ok = postgres_down or not o.failed
        ok = (
            o.longest_s <= TRANSACTION_TIMEOUT_S + 1
            and failed_ok
            and o.lost == 0
            and o.duplicated == 0
            and o.disagreements == 0
            and o.unsettled == 0
            and o.recovery_s is not None
            and o.recovery_s <= RECOVERY_TARGET_S
        )
        failed = ", ".join(f"{n} {code}" for code, n in o.failed.most_common()) or "0"
        table.add_row(
            o.fault.name,
            f"{o.fault.seconds:.0f} s" if o.fault.seconds else "0 s",
            f"{o.longest_s * 1000:,.0f} ms",
            str(o.requests),
            failed,
            f"{o.lost} / {o.duplicated}",
            str(o.disagreements),
            f"{sum(o.failed.values()) - o.unsettled} / {sum(o.failed.values())}",
            f"{o.recovery_s:.2f} s" if o.recovery_s is not None else "never",
            verdict(ok),
        )
    console.print(table)
    console.print(
        "[dim]target: longest answer ≤ the transaction deadline + 1 s "
        f"({TRANSACTION_TIMEOUT_S + 1:.0f} s); failures only while Postgres is away "
        "(store_unavailable), each settled by its retry with the same key once it is back (a "
        "503 is 'unknown, try again': a booking committed as the deadline passed is the retry's "
        "answer); 0 events lost or twice; 0 answers that disagree with the rows (counting the "
        f"retries); recovered within {RECOVERY_TARGET_S:.0f} s[/dim]"
    )


async def run(quick: bool) -> None:
    faults = FAULTS[:3] + FAULTS[3:4] if quick else FAULTS
    outcomes = []
    for fault in faults:
        with tempfile.TemporaryDirectory(prefix="voicebook-faults-") as folder:
            async with temporary_postgres("vb_bench_faults") as url:
                outcomes.append(await run_fault(fault, url, Path(folder)))
    render(outcomes)
