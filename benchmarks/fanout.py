"""Benchmark D: one event delivered to 500 WebSocket subscribers spread over 2 server processes.

Issue: *fan-out: one event delivered to 500 WebSocket subscribers spread over 2 server processes:
p99 delivery latency (target < 50 ms).*

- Two real `python -m voicebook serve` processes, A and B (1 worker each), on one temporary
  migrated Postgres database and one Redis (`VOICEBOOK_REDIS_URL`), so an event published by A
  reaches B's subscribers through Redis pub/sub. One session, started and identified on A.
- Subscribers are WebSocket clients of `/session/{id}/events`, all on one event loop in this
  process: each is a bare `asyncio.Protocol` driving the `websockets` library's sans-I/O client
  (offering permessage-deflate, as browsers do). A frame's arrival time is taken with
  `time.perf_counter()` first thing in `data_received`, before any parsing, so 500 connections
  cost the measurement as little as possible; frames are decoded from JSON after each round. Each
  subscriber first drains the replay (every event logged so far).
- A round: stamp `t0`, `POST /tools/fetch_slots` on A (a raw keep-alive HTTP/1.1 connection whose
  response is stamped the same way, `t1`), then wait until every subscriber has the round's new
  `tool_call` event (its payload id is the round's Idempotency-Key), or 5 s. Latency =
  arrival − `t1` (it can be negative: the server publishes before it answers), also shown as
  arrival − `t0`. Rounds are spaced 100 ms apart after the previous one is delivered.
- Baseline, in the same run: the same rounds with 1 subscriber on A (unloaded delivery). Then
  249 more subscribers join A and 250 join B and the rounds are repeated. `× base` = p99
  from the request ÷ the baseline's (after the response the unloaded latency is about 0, so a
  ratio there would mean nothing); the target is p99 < 50 ms after the response, with no
  delivery missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from harness import console, percentile, temporary_postgres, verdict
from serving import (
    REDIS_URL,
    Process,
    Spec,
    check_redis,
    free_ports,
    raise_open_files,
    running,
    voicebook_argv,
)

SUBSCRIBERS = 500
TARGET_MS = 50.0
SPACING_S = 0.1
DELIVERY_TIMEOUT_S = 2.0
MAX_TIMEOUTS = 3
"""A phase stops after this many rounds that were not fully delivered in DELIVERY_TIMEOUT_S."""
CONNECT_TIMEOUT_S = 30.0
CONNECTING_AT_ONCE = 50
OFFER_DEFLATE = True
"""Offer permessage-deflate, as browsers do (the server then compresses every frame per client)."""
SERVER_ENV = {
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_SLOT_MINUTES": "5",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_HORIZON_DAYS": "120",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    "VOICEBOOK_WEBSOCKETS_PER_SESSION": "500",  # all 500 pages watch one session
    "VOICEBOOK_RATE_LIMIT_PER_ADDRESS": "100000/minute",  # every page connects from here
    "VOICEBOOK_RATE_LIMIT_PER_SESSION": "100000/minute",
}


@dataclass
class Phases:
    warmup_rounds: int
    baseline_rounds: int
    rounds: int


FULL = Phases(warmup_rounds=3, baseline_rounds=20, rounds=40)
QUICK = Phases(warmup_rounds=2, baseline_rounds=8, rounds=12)


# --- clients stamped at the socket ----------------------------------------------------------------


class Arrivals:
    """Counts text frames over all subscribers; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.count = 0
        self._target: int | None = None
        self._reached = asyncio.Event()

    def arrived(self) -> None:
        self.count += 1
        if self._target is not None and self.count >= self._target:
            self._reached.set()

    async def wait_for(self, target: int, timeout: float) -> bool:
        self._target = target
        self._reached.clear()
        if self.count >= target:
            return True
        try:
            await asyncio.wait_for(self._reached.wait(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return False
        finally:
            self._target = None
        return True


class Subscriber(asyncio.Protocol):
    """One WebSocket client: the websockets sans-I/O protocol on a bare asyncio transport."""

    def __init__(self, url: str, process: str, arrivals: Arrivals) -> None:
        loop = asyncio.get_running_loop()
        self.process = process
        self.arrivals = arrivals
        extensions = [ClientPerMessageDeflateFactory()] if OFFER_DEFLATE else None
        self.ws = ClientProtocol(parse_uri(url), extensions=extensions)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.frames: list[tuple[float, bytes]] = []
        """(perf_counter at arrival, text) of the frames received since the last clear."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        stamp = time.perf_counter()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self._fail(self.ws.handshake_exc)
                elif not self.opened.done():
                    self.opened.set_result(None)
            elif event.opcode is Opcode.TEXT:
                self.frames.append((stamp, bytes(event.data)))
                self.arrivals.arrived()
        self._flush()  # pongs, the closing handshake

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.ws.send_close()
            self._flush()
        finally:
            self.transport.close()


class RawHttp(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection whose response is stamped when its last byte arrives."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self.lost = False
        """The server closed the connection (uvicorn closes idle keep-alives after 5 s)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        stamp = time.perf_counter()
        self.buffer += data
        end_of_head = self.buffer.find(b"\r\n\r\n")
        if self.waiter is None or end_of_head < 0:
            return
        lines = self.buffer[:end_of_head].decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        if "content-length" not in headers:
            self.waiter.set_exception(RuntimeError(f"no Content-Length in {lines[0]!r}"))
            self.waiter = None
            return
        end = end_of_head + 4 + int(headers["content-length"])
        if len(self.buffer) < end:
            return
        body = bytes(self.buffer[end_of_head + 4 : end])
        del self.buffer[:end]
        self.waiter.set_result((int(lines[0].split()[1]), body, stamp))
        self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    async def post(
        self, path: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes, float]:
        """Status, body and the perf_counter stamp of the response's arrival."""
        assert self.transport is not None
        body = json.dumps(payload).encode()
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return await asyncio.wait_for(self.waiter, 10)


# --- measurement ----------------------------------------------------------------------------------


@dataclass
class Deliveries:
    """Latencies (seconds) of one phase, per subscriber and round."""

    subscribers: int = 0
    rounds: int = 0
    after_response: list[float] = field(default_factory=list)
    after_request: list[float] = field(default_factory=list)
    missing: int = 0
    spreads: list[float] = field(default_factory=list)
    """Per round: last arrival − first arrival."""
    calls: list[float] = field(default_factory=list)
    """Per round: the POST's own latency, t1 − t0."""

    @property
    def count(self) -> int:
        return len(self.after_response)

    def ms(self, samples: list[float], pct: int | None) -> float:
        if not samples:
            return math.nan
        if pct is None:
            return max(samples) * 1e3
        if pct == 50:
            return statistics.median(samples) * 1e3
        return percentile(samples, pct) * 1e3 if len(samples) > 1 else samples[0] * 1e3


@dataclass
class Phase:
    label: str
    all: Deliveries
    by_process: dict[str, Deliveries]
    cpu_ms_per_round: dict[str, float]
    client_cpu_ms_per_round: float = math.nan
    """This process (all subscribers, the POST, decoding after the round)."""


class Bench:
    def __init__(self, a: Process, b: Process) -> None:
        self.a, self.b = a, b
        self.arrivals = Arrivals()
        self.subscribers: list[Subscriber] = []
        self.session_id = ""
        self.http: RawHttp | None = None
        self.rounds_run = 0

    async def open_session(self) -> None:
        async with httpx.AsyncClient(base_url=self.a.url, timeout=30) as client:
            started = await client.post("/session/start", json={})
            started.raise_for_status()
            self.session_id = started.json()["session_id"]
            identified = await client.post(
                "/tools/identify_user",
                json={"session_id": self.session_id, "phone": "+12127360001", "name": "Fan Out"},
                headers={"Idempotency-Key": "identify"},
            )
            identified.raise_for_status()

    async def connection(self) -> RawHttp:
        """The keep-alive connection to A, reopened when the server has closed it."""
        if self.http is None or self.http.lost:
            _, self.http = await asyncio.get_running_loop().create_connection(
                lambda: RawHttp(f"127.0.0.1:{self.a.port}"), "127.0.0.1", self.a.port
            )
        return self.http

    async def last_event_id(self) -> int:
        async with httpx.AsyncClient(base_url=self.a.url, timeout=30) as client:
            answer = await client.get(f"/session/{self.session_id}/events")
            answer.raise_for_status()
            events = answer.json()
        return events[-1]["id"] if events else 0

    async def subscribe(self, process: Process, count: int) -> None:
        """`count` more subscribers on `process`, each having drained the replay."""
        loop = asyncio.get_running_loop()
        url = f"{process.ws_url}/session/{self.session_id}/events"
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
        last = await self.last_event_id()
        expected = self.arrivals.count + count * last

        async def connect() -> Subscriber:
            async with gate:
                _, subscriber = await loop.create_connection(
                    lambda: Subscriber(url, process.name, self.arrivals), "127.0.0.1", process.port
                )
                await asyncio.wait_for(subscriber.opened, CONNECT_TIMEOUT_S)
                return subscriber

        added = await asyncio.gather(*(connect() for _ in range(count)))
        self.subscribers.extend(added)
        if not await self.arrivals.wait_for(expected, CONNECT_TIMEOUT_S):
            raise RuntimeError(
                f"the replay did not drain: {self.arrivals.count} of {expected} frames arrived"
            )
        for subscriber in added:
            ids = [json.loads(text)["id"] for _, text in subscriber.frames]
            if ids != list(range(1, last + 1)):
                raise RuntimeError(f"replay on {process.name} was {ids}, expected 1..{last}")
        for subscriber in self.subscribers:
            subscriber.frames.clear()

    async def one_round(self, into: Phase | None) -> bool:
        """One published event; True when every subscriber received it in time."""
        http = await self.connection()
        self.rounds_run += 1
        key = f"fanout-{self.rounds_run}"
        expected = self.arrivals.count + len(self.subscribers)
        t0 = time.perf_counter()
        status, body, t1 = await http.post(
            "/tools/fetch_slots", {"session_id": self.session_id}, {"Idempotency-Key": key}
        )
        if status != 200:
            raise RuntimeError(f"fetch_slots → {status}: {body[:300]!r}")
        delivered = await self.arrivals.wait_for(expected, DELIVERY_TIMEOUT_S)
        stamps = []
        for subscriber in self.subscribers:
            arrival = next(
                (stamp for stamp, text in subscriber.frames if _is_call(text, key)), None
            )
            subscriber.frames.clear()
            for deliveries in (
                (into.all, into.by_process[subscriber.process]) if into is not None else ()
            ):
                if arrival is None:
                    deliveries.missing += 1
                else:
                    deliveries.after_response.append(arrival - t1)
                    deliveries.after_request.append(arrival - t0)
            if arrival is not None:
                stamps.append(arrival)
        if into is not None:
            into.all.calls.append(t1 - t0)
            if stamps:
                into.all.spreads.append(max(stamps) - min(stamps))
        await asyncio.sleep(SPACING_S)
        return delivered

    async def phase(self, label: str, warmup: int, rounds: int) -> Phase:
        for _ in range(warmup):
            await self.one_round(None)
        names = sorted({s.process for s in self.subscribers})
        phase = Phase(label, Deliveries(), {name: Deliveries() for name in names}, {})
        phase.all.subscribers = len(self.subscribers)
        for name in names:
            phase.by_process[name].subscribers = sum(s.process == name for s in self.subscribers)
        cpu = {p.name: p.cpu_seconds() for p in (self.a, self.b)}
        cpu["client"] = time.process_time()
        timeouts = 0
        for _ in range(rounds):
            phase.all.rounds += 1
            if not await self.one_round(phase):
                timeouts += 1
                if timeouts >= MAX_TIMEOUTS:
                    console.print(
                        f"[red]{label}: {timeouts} rounds not fully delivered in "
                        f"{DELIVERY_TIMEOUT_S:.0f} s; stopping after {phase.all.rounds}[/red]"
                    )
                    break
        phase.cpu_ms_per_round = {
            p.name: (p.cpu_seconds() - cpu[p.name]) / phase.all.rounds * 1e3
            for p in (self.a, self.b)
        }
        phase.client_cpu_ms_per_round = (
            (time.process_time() - cpu["client"]) / phase.all.rounds * 1e3
        )
        return phase

    def close(self) -> None:
        for subscriber in self.subscribers:
            subscriber.close()
        if self.http is not None and self.http.transport is not None:
            self.http.transport.close()


def _is_call(text: bytes, key: str) -> bool:
    event = json.loads(text)
    return event.get("type") == "tool_call" and event.get("payload", {}).get("id") == key


# --- presentation ---------------------------------------------------------------------------------


def render(baseline: Phase, loaded: Phase) -> None:
    table = Table(
        title=f"D · fan-out: one event to {SUBSCRIBERS} WebSocket subscribers over 2 processes "
        "(Redis, Postgres)",
        caption_justify="left",
    )
    for name, justify in [
        ("subscribers", "left"),
        ("deliv.", "right"),
        ("missing", "right"),
        ("p50", "right"),
        ("p95", "right"),
        ("p99", "right"),
        ("max", "right"),
        ("req p50", "right"),
        ("req p99", "right"),
        ("× base", "right"),
        ("target", "left"),
        ("result", "center"),
    ]:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    base_p99 = baseline.all.ms(baseline.all.after_request, 99)

    def row(label: str, d: Deliveries, judged: bool, section: bool = False) -> None:
        p99 = d.ms(d.after_response, 99)
        ok = p99 < TARGET_MS and d.missing == 0
        table.add_row(
            label,
            f"{d.count:,}",
            str(d.missing),
            f"{d.ms(d.after_response, 50):.1f}",
            f"{d.ms(d.after_response, 95):.1f}",
            f"{p99:.1f}",
            f"{d.ms(d.after_response, None):.1f}",
            f"{d.ms(d.after_request, 50):.1f}",
            f"{d.ms(d.after_request, 99):.1f}",
            f"{d.ms(d.after_request, 99) / base_p99:.2f}" if base_p99 > 0 else "—",
            f"< {TARGET_MS:.0f} ms" if judged else "",
            verdict(ok) if judged else "",
            end_section=section,
        )

    row("1 on A (baseline)", baseline.all, False, section=True)
    row(f"{loaded.all.subscribers} on A + B", loaded.all, True)
    for name, d in loaded.by_process.items():
        row(f"{d.subscribers} on {name}" + (" (publisher)" if name == "A" else ""), d, False)
    cpu = "; ".join(
        f"{name} {ms:.1f} ms (baseline {baseline.cpu_ms_per_round[name]:.1f} ms, so "
        f"{(ms - baseline.cpu_ms_per_round[name]) * 1e3 / d.subscribers:.0f} µs per subscriber)"
        for name, ms in loaded.cpu_ms_per_round.items()
        if (d := loaded.by_process.get(name)) is not None and d.subscribers
    )
    spread = loaded.all.ms(loaded.all.spreads, 50)
    table.caption = (
        "p50…max: ms from the arrival of the POST /tools/fetch_slots response to the arrival at "
        "the subscriber's socket\n(negative: delivered before the answer). req p50 / p99: ms from "
        "sending the POST instead.\n× base = req p99 ÷ the 1-subscriber req p99 of this run. "
        f"Target: p99 < {TARGET_MS:.0f} ms over all {loaded.all.subscribers}, and none missing.\n"
        f"{loaded.all.rounds} rounds with {loaded.all.subscribers} subscribers, "
        f"{baseline.all.rounds} with 1, {SPACING_S * 1e3:.0f} ms apart. POST latency p50: "
        f"{baseline.all.ms(baseline.all.calls, 50):.1f} ms unloaded, "
        f"{loaded.all.ms(loaded.all.calls, 50):.1f} ms loaded. First-to-last arrival in a round: "
        f"p50 {spread:.1f} ms.\nServer CPU per round (per event): {cpu}.\nThis client's CPU per "
        f"round: {loaded.client_cpu_ms_per_round:.1f} ms (baseline "
        f"{baseline.client_cpu_ms_per_round:.1f} ms), JSON decoding after the round included.\n"
        "All subscribers share this process's one event loop; frames are stamped before parsing. "
        f"Redis {REDIS_URL}."
    )
    console.print(table)


async def run(quick: bool) -> None:
    phases = QUICK if quick else FULL
    await check_redis()
    raise_open_files(SUBSCRIBERS * 2 + 256)
    env = {**SERVER_ENV, "VOICEBOOK_REDIS_URL": REDIS_URL}
    async with temporary_postgres("vb_bench_fanout") as url:
        env["VOICEBOOK_DATABASE_URL"] = url
        ports = free_ports(2)
        specs = [
            Spec(name, voicebook_argv(port), port, env)
            for name, port in zip("AB", ports, strict=True)
        ]
        with tempfile.TemporaryDirectory(prefix="vb_bench_fanout_") as tmp:
            async with running(specs, Path(tmp)) as [a, b]:
                bench = Bench(a, b)
                try:
                    await bench.open_session()
                    await bench.subscribe(a, 1)
                    baseline = await bench.phase(
                        "baseline", phases.warmup_rounds, phases.baseline_rounds
                    )
                    half = SUBSCRIBERS // 2
                    await bench.subscribe(a, half - 1)
                    await bench.subscribe(b, SUBSCRIBERS - half)
                    loaded = await bench.phase("loaded", phases.warmup_rounds, phases.rounds)
                finally:
                    bench.close()
    render(baseline, loaded)
