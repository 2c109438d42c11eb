"""Scale-out and failure, end to end (DESIGN §3, §5, §7).

Real `voicebook serve` processes on one Postgres and one Redis: a WebSocket on worker A sees the
tool calls made on worker B; a hundred callers racing for one slot across both workers get one
booking and ninety-nine `slot_taken`; and a Postgres outage — a TCP proxy between the server and
Postgres, cut and restored by the test — is answered with a quick 503 `store_unavailable`, heals
without a restart, and loses or duplicates no booking.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from servers import Server, free_port, running_server
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

API_KEY = "scale-and-outage-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ZONE = ZoneInfo("America/New_York")  # the default VOICEBOOK_TIMEZONE
LIVE_S = 5.0
"""An event made on B reaches A's WebSocket within this; the idle re-read of the log is 15 s."""
RESYNC_S = 15.0  # voicebook.server.websocket.RESYNC_S
POOL_TIMEOUT_S = 5.0  # PostgresStore's connect_timeout, the wait for a pooled connection
HANG_LIMIT_S = 10.0
"""No tool call may take longer than this while Postgres is away (it never hangs)."""
RECOVERY_S = 15.0
"""After Postgres is back, requests succeed again within this, with no restart."""


def server_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        "VOICEBOOK_DATABASE_URL": database_url,
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
        "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
        **extra,
    }
    if redis_url:
        env["VOICEBOOK_REDIS_URL"] = redis_url
    return env


def via(proxy: TcpProxy, database_url: str) -> str:
    """`database_url` with its host and port replaced by the proxy's."""
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"{proxy.host}:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def postgres_target(database_url: str) -> tuple[str, int]:
    parts = urlsplit(database_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@contextlib.contextmanager
def serving(tmp_path: Path, *envs: dict[str, str]) -> Iterator[list[Server]]:
    """One server per env, started side by side; their logs are printed when the test fails."""
    ports: set[int] = set()
    while len(ports) < len(envs):
        ports.add(free_port())
    managers = [
        running_server(env, tmp_path, port=port) for env, port in zip(envs, ports, strict=True)
    ]
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(len(managers)) as pool:
            starting = [pool.submit(manager.__enter__) for manager in managers]
        servers, failures = [], []
        for manager, future in zip(managers, starting, strict=True):
            if future.exception() is None:
                servers.append(future.result())
                stack.push(manager.__exit__)
            else:
                failures.append(future.exception())
        if failures:
            raise failures[0]
        try:
            yield servers
        except BaseException:
            for server in servers:
                print(f"--- log of the server on port {server.port} ---\n{server.log()[-6000:]}")
            raise


class _KeepAliveRetry(httpx.AsyncHTTPTransport):
    """Sends a request again when the server closed its kept-alive connection before sending any
    response (the keep-alive race: the server timed the idle connection out just as the request
    went out). Safe: every tool call carries an idempotency key, and a session start the server
    never answered costs at most an unused session."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(2):
            try:
                return await super().handle_async_request(request)
            except httpx.RemoteProtocolError as closed:
                if "without sending a response" not in str(closed):
                    raise
        return await super().handle_async_request(request)


@contextlib.asynccontextmanager
async def clients(
    *servers: Server, connections: int = 20
) -> AsyncIterator[list[httpx.AsyncClient]]:
    # The client lets an idle connection go well before the server would (its keep-alive is
    # 5 s): on a busy machine a phase can wait longer than that, and a request sent on a
    # connection the server is closing fails with a reset (ReadError), not only the
    # RemoteProtocolError `_KeepAliveRetry` sends again.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=s.url,
                    headers=AUTH,
                    timeout=30,
                    transport=_KeepAliveRetry(limits=limits),
                )
            )
            for s in servers
        ]


_keys = itertools.count(1)


async def tool(
    client: httpx.AsyncClient, name: str, session_id: str, key: str | None = None, /, **args: Any
) -> httpx.Response:
    return await client.post(
        f"/tools/{name}",
        json={"session_id": session_id, **args},
        headers={"Idempotency-Key": key or f"call_{next(_keys)}"},
    )


async def ok(response: httpx.Response | Any) -> Any:
    """The JSON of a 200 answer (awaiting the request first if given a coroutine)."""
    if not isinstance(response, httpx.Response):
        response = await response
    assert response.status_code == 200, response.text
    return response.json()


async def new_session(client: httpx.AsyncClient, phone: str | None = None) -> str:
    session_id = (await ok(client.post("/session/start")))["session_id"]
    if phone is not None:
        await ok(tool(client, "identify_user", session_id, phone=phone))
    return session_id


def phone(n: int) -> str:
    """Distinct valid numbers: +1 415 555 0100…0199, then +1 212 555 0100…0199."""
    area = ("415", "212")[n // 100]
    return f"+1 {area} 555 01{n % 100:02d}"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_day(days_ahead: int) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days_ahead)


async def next_event(ws: ClientConnection, timeout: float = LIVE_S) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def events_until_tool_call(ws: ClientConnection, key: str) -> list[dict[str, Any]]:
    """Events from the WebSocket up to and including the tool_call with this key."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "tool_call" or events[-1]["payload"]["id"] != key:
        assert len(events) < 10, f"no tool_call {key} among {events}"
        events.append(await next_event(ws))
    return events


async def wait_ready(client: httpx.AsyncClient, within: float) -> float:
    """Poll /readyz until it answers 200; the seconds that took."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(httpx.TimeoutException):
            if (await client.get("/readyz", timeout=5)).status_code == 200:
                return time.monotonic() - start
        assert time.monotonic() - start < within, f"{client.base_url} not ready after {within} s"
        await asyncio.sleep(0.2)


def assert_store_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"
    assert float(response.headers["Retry-After"]) > 0


def assert_contiguous(events: list[dict[str, Any]], first: int = 1) -> None:
    ids = [e["id"] for e in events]
    assert ids == list(range(first, first + len(ids))), f"gap or duplicate in {ids}"


# --- 1. A WebSocket on A sees the tool calls made on B --------------------------------------------


async def test_websocket_on_one_server_streams_tool_calls_made_on_another(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = server_env(pg_url, redis_url)
    with serving(tmp_path, env, env) as (a, b):
        async with clients(b) as (on_b,):
            session_id = await new_session(on_b)
            url = f"{a.ws_url}/session/{session_id}/events"
            async with connect(url, open_timeout=10) as ws:
                received = [await next_event(ws)]  # the replayed log: the session started
                assert received[0]["type"] == "status"
                assert received[0]["payload"]["state"] == "connected"

                lags: list[float] = []

                async def step(name: str, /, **args: Any) -> Any:
                    """Call a tool on B; its tool_call event must reach A's WebSocket live."""
                    key = f"scale-{len(lags)}-{name}"
                    sent = time.monotonic()
                    answer = await ok(tool(on_b, name, session_id, key, **args))
                    # Live: well before the WebSocket's 15 s re-read of the log could have found
                    # it, and before the next call is made.
                    events = await events_until_tool_call(ws, key)
                    lags.append(time.monotonic() - sent)
                    call = events[-1]["payload"]
                    assert (call["name"], call["status"]) == (name, "completed")
                    assert call["result"] == answer
                    received.extend(events)
                    return answer

                await step("identify_user", phone=phone(42), name="Ada")
                slots = (await step("fetch_slots", date=local_day(2).isoformat(), limit=3))["slots"]
                await step("book_appointment", slot_id=slots[0]["slot_id"], notes="scale-out")

                assert_contiguous(received)
                assert [e["type"] for e in received] == [
                    "status",  # connected
                    "tool_call",
                    "tool_call",
                    "tool_call",
                ]
                assert [e["payload"]["name"] for e in received if e["type"] == "tool_call"] == [
                    "identify_user",
                    "fetch_slots",
                    "book_appointment",
                ]
                assert {e["session_id"] for e in received} == {session_id}
                assert max(lags) < LIVE_S
                print(
                    f"measured: call on B → event on A's WebSocket: {[round(x, 3) for x in lags]} s"
                )

                # The same log as B keeps, and as A replays to a late joiner.
                log = await ok(on_b.get(f"/session/{session_id}/events"))
                assert [(e["id"], e["type"]) for e in log] == [
                    (e["id"], e["type"]) for e in received
                ]
                async with connect(f"{url}?after=1", open_timeout=10) as late:
                    replay = [await next_event(late) for _ in range(3)]
                    assert replay == received[1:]
                    with pytest.raises(asyncio.TimeoutError):
                        await next_event(late, timeout=0.5)


# --- 2. A hundred callers race for one slot across two servers ------------------------------------


async def test_hundred_concurrent_bookings_of_one_slot_on_two_servers(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = server_env(pg_url, redis_url)
    with serving(tmp_path, env, env) as servers:
        async with clients(*servers, connections=120) as http:
            sessions = await asyncio.gather(*(new_session(http[i % 2]) for i in range(100)))
            await asyncio.gather(
                *(
                    ok(tool(http[i % 2], "identify_user", s, phone=phone(i)))
                    for i, s in enumerate(sessions)
                )
            )
            offered = await ok(
                tool(http[0], "fetch_slots", sessions[0], date=local_day(3).isoformat(), limit=4)
            )
            slot = offered["slots"][2]

            gate = asyncio.Event()

            async def book(i: int, session_id: str) -> httpx.Response:
                await gate.wait()
                return await tool(
                    http[i % 2],
                    "book_appointment",
                    session_id,
                    f"race-{i}",
                    slot_id=slot["slot_id"],
                )

            racers = [asyncio.create_task(book(i, s)) for i, s in enumerate(sessions)]
            await asyncio.sleep(0.05)  # every racer is waiting at the gate
            gate.set()
            answers = await asyncio.wait_for(asyncio.gather(*racers), 60)

            statuses = Counter(r.status_code for r in answers)
            assert statuses == {200: 1, 409: 99}, {
                r.status_code: r.text for r in answers if r.status_code not in (200, 409)
            }
            winner = next(i for i, r in enumerate(answers) if r.status_code == 200)
            appointment = answers[winner].json()["appointment"]
            assert instant(appointment["start"]) == instant(slot["start"])
            for answer in answers:
                if answer.status_code == 409:
                    error = answer.json()["error"]
                    assert error["code"] == "slot_taken", error
                    assert isinstance(error["alternatives"], list)
                    assert error["alternatives"], error
                    assert instant(slot["start"]) not in {
                        instant(a["start"]) for a in error["alternatives"]
                    }
            # Both servers took part in the race (and lost or won on their own).
            by_server = Counter((i % 2, r.status_code) for i, r in enumerate(answers))
            assert by_server[(0, 409)] + by_server[(0, 200)] == 50
            assert by_server[(1, 409)] + by_server[(1, 200)] == 50

            # The other server tells the winner's story too.
            tools = await ok(http[1 - winner % 2].get(f"/session/{sessions[winner]}/tools"))
            assert [(t["name"], t["status"]) for t in tools][-1] == (
                "book_appointment",
                "completed",
            )

    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cursor = await conn.execute(
            "SELECT id, session_id, status FROM appointments WHERE starts_at = %s",
            (instant(slot["start"]),),
        )
        rows = await cursor.fetchall()
    assert rows == [(appointment["id"], sessions[winner], "confirmed")]


# --- 3. A Postgres outage: 503 quickly, recovery without a restart, no booking lost ---------------


@dataclass
class Attempt:
    loop: int
    slot: dict[str, Any]
    key: str
    started: float
    ended: float = 0.0
    status: int = 0
    """0: no answer within the client's timeout."""
    code: str | None = None
    retry_after: str | None = None
    appointment_id: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


async def test_postgres_outage_answers_503_quickly_and_recovers_without_restart(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    cut_s = 8.0  # longer than a refusal takes (one pool timeout), so some fit inside
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), redis_url)
        with serving(tmp_path, env) as (server,):
            async with clients(server) as (http,):
                sessions = [await new_session(http, phone(i)) for i in range(4)]
                slots = []
                for day in (1, 2, 3):  # 48 slots a day, none about to pass during the test
                    on = local_day(day).isoformat()
                    slots += (await ok(tool(http, "fetch_slots", sessions[0], date=on, limit=200)))[
                        "slots"
                    ]
                assert len(slots) >= 140
                free = iter(slots)
                attempts: list[Attempt] = []
                stop = asyncio.Event()

                async def booking_loop(n: int, session_id: str) -> None:
                    """Book one fresh slot after another until told to stop (bounded)."""
                    for _ in range(40):
                        slot = next(free, None)
                        if stop.is_set() or slot is None:
                            return
                        attempt = Attempt(
                            n, slot, f"outage-{n}-{slot['slot_id']}", time.monotonic()
                        )
                        attempts.append(attempt)
                        try:
                            answer = await tool(
                                http,
                                "book_appointment",
                                session_id,
                                attempt.key,
                                slot_id=slot["slot_id"],
                            )
                        except httpx.TimeoutException:
                            attempt.ended = time.monotonic()
                            continue
                        attempt.ended = time.monotonic()
                        attempt.status = answer.status_code
                        body = answer.json()
                        if answer.status_code == 200:
                            attempt.appointment_id = body["appointment"]["id"]
                        else:
                            attempt.code = body["error"]["code"]
                            attempt.retry_after = answer.headers.get("Retry-After")
                        await asyncio.sleep(0.2)

                http.timeout = httpx.Timeout(HANG_LIMIT_S + 3)
                loops = [asyncio.create_task(booking_loop(n, s)) for n, s in enumerate(sessions)]
                try:
                    deadline = time.monotonic() + 10
                    while sum(a.status == 200 for a in attempts) < 8:
                        assert time.monotonic() < deadline, attempts
                        await asyncio.sleep(0.05)

                    proxy.cut()
                    cut_at = time.monotonic()
                    ready_s = []
                    while time.monotonic() < cut_at + cut_s:
                        if len(ready_s) < 2:  # at once, and once the dead connections are gone
                            started = time.monotonic()
                            assert_store_unavailable(await http.get("/readyz"))
                            ready_s.append(time.monotonic() - started)
                        started = time.monotonic()
                        assert (await http.get("/healthz")).status_code == 200
                        assert time.monotonic() - started < 2  # no store involved
                        await asyncio.sleep(0.5)
                    assert max(ready_s) < 4.5  # /readyz waits 3 s for the store at most
                    restore_at = time.monotonic()
                    proxy.restore()

                    deadline = restore_at + RECOVERY_S + HANG_LIMIT_S
                    while not any(a.status == 200 and a.ended > restore_at for a in attempts):
                        assert time.monotonic() < deadline, "no booking succeeded after restore"
                        await asyncio.sleep(0.05)
                    recovered_s = (
                        min(a.ended for a in attempts if a.status == 200 and a.ended > restore_at)
                        - restore_at
                    )
                    assert await wait_ready(http, RECOVERY_S) < RECOVERY_S
                    await asyncio.sleep(0.5)
                finally:
                    stop.set()
                    await asyncio.wait_for(asyncio.gather(*loops), HANG_LIMIT_S + 5)

    answered = [a for a in attempts if a.ended]
    slowest = max(a.seconds for a in answered)
    assert all(a.status for a in answered), "a booking got no answer: the server hung"
    assert slowest <= HANG_LIMIT_S, f"a booking took {slowest:.1f} s while Postgres was away"
    assert {a.status for a in answered} <= {200, 503}, Counter((a.status, a.code) for a in answered)
    for a in answered:
        if a.status == 503:
            assert a.code == "store_unavailable"
            assert a.retry_after is not None and float(a.retry_after) > 0
    during = [a for a in answered if cut_at <= a.started and a.ended < restore_at]
    assert during, "no booking was answered while Postgres was away"
    assert {a.status for a in during} == {503}
    # Refused within a few seconds: one wait for a pooled connection, not two.
    assert max(a.seconds for a in during) <= POOL_TIMEOUT_S + 1.5
    assert recovered_s < RECOVERY_S, f"recovered only {recovered_s:.1f} s after restore"
    print(
        f"measured: readyz 503 in {[round(x, 2) for x in ready_s]} s; bookings answered while cut: "
        f"{sorted(round(a.seconds, 2) for a in during)} s; slowest {slowest:.2f} s; "
        f"first 200 {recovered_s:.2f} s after restore; {len(answered)} attempts"
    )
    assert any(a.status == 200 and a.started > restore_at for a in answered)

    # Every booking answered 200 is in the database; no slot holds two rows.
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cursor = await conn.execute(
            "SELECT id, session_id, starts_at, status FROM appointments WHERE session_id = ANY(%s)",
            (sessions,),
        )
        rows = await cursor.fetchall()
    by_id = {row[0]: row for row in rows}
    for a in answered:
        if a.status == 200:
            assert a.appointment_id in by_id, f"booked {a.key} is missing from the database"
            _, session_id, starts_at, status = by_id[a.appointment_id]
            assert (session_id, status) == (sessions[a.loop], "confirmed")
            assert starts_at == instant(a.slot["start"])
    per_start = Counter(row[2] for row in rows)
    assert max(per_start.values()) == 1
    attempted = {instant(a.slot["start"]): a for a in attempts}
    assert set(per_start) <= set(attempted)
    booked = {a.appointment_id for a in answered if a.status == 200}
    unconfirmed = [row for row in rows if row[0] not in booked]
    # A commit whose answer was lost to the cut may exist although it was answered 503; only
    # attempts in flight at the moment of the cut can be in that state.
    for _, _, starts_at, _ in unconfirmed:
        a = attempted[starts_at]
        assert a.status != 200 and a.started < cut_at <= a.ended


async def test_a_retry_with_the_same_key_books_once_postgres_is_back(
    pg_url: str, tmp_path: Path
) -> None:
    """A store_unavailable refusal is no answer to keep: the retry (same key, as the SDK sends
    it) books for real once Postgres is back, and only once."""
    # With one pooled connection the store is back (reconnected) by the time the refusal could
    # be written down: the interleaving in which it once became the key's answer, made certain.
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), None, VOICEBOOK_DATABASE_POOL_SIZE="1")
        with serving(tmp_path, env) as (server,):
            async with clients(server) as (http,):
                session_id = await new_session(http, phone(8))
                on = local_day(1).isoformat()
                offered = await ok(tool(http, "fetch_slots", session_id, date=on, limit=1))
                slot = offered["slots"][0]
                # Postgres drops its connections (a restart, a pooler failover) and is back at once.
                proxy.reset()
                answers = []
                for _ in range(4):  # the call and up to three retries, as the SDK would make them
                    answer = await tool(
                        http, "book_appointment", session_id, "blip-1", slot_id=slot["slot_id"]
                    )
                    answers.append(answer)
                    if answer.status_code != 503:
                        break
                    await asyncio.sleep(float(answer.headers["Retry-After"]))
                print(f"measured: after the blip {[a.status_code for a in answers]}")
                assert answers[-1].status_code == 200, [
                    (a.status_code, a.headers.get("Idempotent-Replayed"), a.json()["error"]["code"])
                    for a in answers
                ]

    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM appointments WHERE session_id = %s", (session_id,)
        )
        assert await cursor.fetchone() == (1,)


# --- 4. A WebSocket through an outage -------------------------------------------------------------


async def test_websocket_stays_open_through_a_short_outage_and_streams_later_calls(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """An outage shorter than the WebSocket's idle re-read (RESYNC_S) does not close it: live
    events come over Redis and need no store, so once Postgres is back the calls made on B stream
    to A's WebSocket, continuing its ids with no gap."""
    cut_s = 4.0
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), redis_url)
        with serving(tmp_path, env, env) as (a, b):
            async with clients(a, b) as (on_a, on_b):
                session_id = await new_session(on_b, phone(9))
                async with connect(f"{a.ws_url}/session/{session_id}/events") as ws:
                    received = [await next_event(ws) for _ in range(2)]
                    assert [e["type"] for e in received] == ["status", "tool_call"]
                    # A live event: the WebSocket has finished reading the log and is streaming.
                    await ok(tool(on_b, "retrieve_appointments", session_id, "before-outage"))
                    received += await events_until_tool_call(ws, "before-outage")
                    idle_from = time.monotonic()

                    proxy.cut()
                    cut_at = time.monotonic()
                    for ready in await asyncio.gather(on_a.get("/readyz"), on_b.get("/readyz")):
                        assert_store_unavailable(ready)
                    # Nothing arrives, and nothing closes the WebSocket, while Postgres is away.
                    with pytest.raises(asyncio.TimeoutError):
                        await next_event(ws, timeout=max(0.5, cut_at + cut_s - time.monotonic()))
                    proxy.restore()
                    recovery = await asyncio.gather(
                        wait_ready(on_a, RECOVERY_S), wait_ready(on_b, RECOVERY_S)
                    )
                    print(f"measured: A and B ready {recovery} s after restore")
                    # Still inside the idle re-read: what follows came live, not from the log.
                    assert time.monotonic() - idle_from < RESYNC_S

                    keys = []
                    for name, args in (
                        ("fetch_slots", {"date": local_day(1).isoformat(), "limit": 2}),
                        ("retrieve_appointments", {}),
                    ):
                        keys.append(f"after-outage-{name}")
                        await ok(tool(on_b, name, session_id, keys[-1], **args))
                        received += await events_until_tool_call(ws, keys[-1])
                    assert_contiguous(received)
                    with pytest.raises(asyncio.TimeoutError):
                        await next_event(ws, timeout=0.5)

                log = await ok(on_a.get(f"/session/{session_id}/events"))
                assert log == received


async def test_websocket_on_a_server_without_postgres_closes_1011_and_resumes_on_another(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Only A loses Postgres. Its idle WebSocket notices when it next re-reads the log (every
    RESYNC_S) and closes with 1011; the page resumes on a healthy server with ?after=<last id>
    and gets exactly what it missed meanwhile."""
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env_a = server_env(via(proxy, pg_url), redis_url)
        with serving(tmp_path, env_a, server_env(pg_url, redis_url)) as (a, b):
            async with clients(b) as (on_b,):
                session_id = await new_session(on_b, phone(10))
                seen = await ok(on_b.get(f"/session/{session_id}/events"))
                last = seen[-1]["id"]  # what the page already has
                url = f"{a.ws_url}/session/{session_id}/events?after={last}"
                async with connect(url) as ws:
                    opened = time.monotonic()
                    await asyncio.sleep(1)  # it has read the (empty) rest of the log: streaming
                    proxy.cut()
                    with pytest.raises(ConnectionClosedError) as closed:
                        await next_event(ws, timeout=2 * RESYNC_S + POOL_TIMEOUT_S + 2)
                    closed_after = time.monotonic() - opened
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1011
                assert RESYNC_S - 1 < closed_after < 2 * RESYNC_S + POOL_TIMEOUT_S + 2
                print(f"measured: A closed its idle WebSocket 1011 {closed_after:.2f} s after open")

                on = local_day(1).isoformat()
                slots = (await ok(tool(on_b, "fetch_slots", session_id, "missed-1", date=on)))[
                    "slots"
                ]
                await ok(
                    tool(
                        on_b,
                        "book_appointment",
                        session_id,
                        "missed-2",
                        slot_id=slots[0]["slot_id"],
                    )
                )
                async with connect(f"{b.ws_url}/session/{session_id}/events?after={last}") as ws:
                    resumed = await events_until_tool_call(ws, "missed-2")
                    with pytest.raises(asyncio.TimeoutError):
                        await next_event(ws, timeout=0.5)
                    # ...and it streams live from there.
                    await ok(tool(on_b, "retrieve_appointments", session_id, "live-3"))
                    resumed += await events_until_tool_call(ws, "live-3")
                assert_contiguous(resumed, first=last + 1)
                assert [e["payload"]["id"] for e in resumed] == ["missed-1", "missed-2", "live-3"]
                assert resumed == await ok(on_b.get(f"/session/{session_id}/events?after={last}"))


async def test_websocket_opened_while_postgres_is_away_is_told_to_retry(
    pg_url: str, tmp_path: Path
) -> None:
    """Reconnecting during an outage (as 1011 asks) is answered 1011 again, so the page keeps
    trying; an unknown session is refused outright (HTTP 403)."""
    with (
        TcpProxy(*postgres_target(pg_url)) as proxy,
        serving(tmp_path, server_env(via(proxy, pg_url), None)) as (server,),
    ):
        async with clients(server) as (http,):
            session_id = await new_session(http)
        url = f"{server.ws_url}/session/{session_id}/events"
        with pytest.raises(InvalidStatus) as unknown:
            async with connect(f"{server.ws_url}/session/{'x' * 22}/events"):
                pass
        proxy.cut()
        started = time.monotonic()
        try:
            async with connect(url, open_timeout=15) as ws:
                with pytest.raises(ConnectionClosedError) as closed:
                    await next_event(ws, timeout=15)
                outcome: tuple[str, int | None] = (
                    "closed",
                    closed.value.rcvd.code if closed.value.rcvd else None,
                )
        except InvalidStatus as refused:
            outcome = ("refused", refused.response.status_code)
        assert time.monotonic() - started < 2 * POOL_TIMEOUT_S + 1
        assert unknown.value.response.status_code == 403  # what an unknown session gets
        assert outcome == ("closed", 1011), outcome  # "try again", not "no such session"
