"""The database side never hangs (DESIGN §5): whatever Postgres or the link to it does, every
request answers within the store's deadline — 503 `store_unavailable` with Retry-After — and the
server heals by itself.

Real `voicebook serve` processes reach Postgres through tests/tcp_proxy.py, which black-holes
(`hold`), refuses (`cut`) or resets (`reset`) the link. Deadlocks between concurrent moves are
retried inside the store layer; time limits set per transaction hold through PgBouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import Clock
from helpers import call, identified, key
from tcp_proxy import TcpProxy
from test_pooler import pooler_url  # noqa: F401  (a fixture)
from test_scale_and_outage import (
    assert_store_unavailable,
    clients,
    local_day,
    new_session,
    ok,
    phone,
    postgres_target,
    server_env,
    serving,
    tool,
    via,
    wait_ready,
)
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import DomainError, StoreUnavailable
from voicebook.scheduling.service import SchedulingService, utc_now
from voicebook.store import TransactionConflict, retrying
from voicebook.store.postgres import PostgresStore, link_parameters
from voicebook.store.sql import SqlTransaction

pytestmark = pytest.mark.postgres

DEADLINE_S = 2.0
"""VOICEBOOK_DATABASE_TRANSACTION_TIMEOUT_S of the servers below (the default is 8)."""
MARGIN_S = 1.5
"""What an answer may take beyond the deadline on a busy machine (HTTP, the second cancel)."""
FAST = {
    "VOICEBOOK_DATABASE_TRANSACTION_TIMEOUT_S": str(DEADLINE_S),
    "VOICEBOOK_DATABASE_STATEMENT_TIMEOUT_S": "1",
    "VOICEBOOK_DATABASE_CONNECT_TIMEOUT_S": "2",
}
RECOVERY_S = 15.0


def statuses(answers: list[httpx.Response]) -> Counter[tuple[int, str | None]]:
    return Counter(
        (a.status_code, a.json()["error"]["code"] if a.status_code != 200 else None)
        for a in answers
    )


# --- the pieces ---------------------------------------------------------------------------------


def test_link_parameters_bound_a_dead_link_and_the_url_wins() -> None:
    url = "postgresql://root@db.example:5432/app"
    assert link_parameters(url, 5, 8) == {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 8000,
    }
    tuned = link_parameters(url + "?keepalives_idle=60&connect_timeout=20", 1.5, 2)
    assert "keepalives_idle" not in tuned
    assert "connect_timeout" not in tuned
    assert link_parameters(url, 1, 2)["connect_timeout"] == 2  # libpq's least


async def test_every_transaction_runs_with_its_limits(pg_url: str) -> None:
    """The limits the BEGIN sets (begin_statements) hold inside a transaction, whichever round
    trip carries them, and end with it (SET LOCAL: a transaction pooler's next client must not
    inherit them)."""
    store = PostgresStore(pg_url, statement_timeout=5, transaction_timeout=8)
    await store.open()
    try:
        names = [
            "statement_timeout",
            "idle_in_transaction_session_timeout",
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
        ]
        settings = ", ".join(f"current_setting('{name}') AS {name}" for name in names)
        async with store.transaction() as tx:
            (inside,) = await tx._fetch(f"SELECT {settings}")
        assert inside == {
            "statement_timeout": "5s",
            "idle_in_transaction_session_timeout": "8s",
            "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
        }
        async with store.transaction() as tx:
            await tx._fetch("SELECT 1")  # the BEGIN rides with it
            (also,) = await tx._fetch(f"SELECT {settings}")
        assert also == inside
        async with store._connection(begin=["BEGIN"]) as conn:  # a plain one does not inherit
            cursor = await conn.execute("SELECT current_setting('statement_timeout') AS t")
            assert (await cursor.fetchone())["t"] == "0"
    finally:
        await store.close()


async def test_retrying_runs_the_whole_body_again_a_bounded_number_of_times() -> None:
    runs: list[int] = []

    async def transaction(conflicts: int) -> str:
        async for attempt in retrying(tries=3):
            async with attempt:
                runs.append(attempt_number := len(runs) + 1)
                if attempt_number <= conflicts:
                    raise TransactionConflict()
                result = f"done after {attempt_number}"
        return result

    assert await transaction(conflicts=2) == "done after 3"
    runs.clear()
    with pytest.raises(TransactionConflict) as left:
        await transaction(conflicts=5)
    assert len(runs) == 3
    assert isinstance(left.value, StoreUnavailable)  # a 503 like any other, once tries run out
    assert left.value.status == 503

    async def refused() -> None:
        async for attempt in retrying():
            async with attempt:
                runs.append(1)
                raise StoreUnavailable()

    runs.clear()
    with pytest.raises(DomainError):  # any other outcome is not retried
        await refused()
    assert runs == [1]


async def test_time_limits_hold_per_transaction_through_pgbouncer(
    pooler_url: str,  # noqa: F811
) -> None:
    """Behind a transaction pooler a connection-level SET would land on whichever server
    connection ran it (and leak to other clients); SET LOCAL with each BEGIN holds exactly for
    the transaction."""
    store = PostgresStore(pooler_url, prepared_statements=False, pool_size=4, statement_timeout=0.5)
    await store.open()
    try:

        async def limits() -> tuple[str, str]:
            async with store._connection() as conn:
                rows = [
                    await (await conn.execute(f"SHOW {name}")).fetchone()
                    for name in ("statement_timeout", "idle_in_transaction_session_timeout")
                ]
            return rows[0]["statement_timeout"], rows[1]["idle_in_transaction_session_timeout"]

        seen = await asyncio.gather(*(limits() for _ in range(12)))
        assert set(seen) == {("500ms", "8s")}
        # Another client of the same pooler (and so of the same server connections): untouched.
        async with await psycopg.AsyncConnection.connect(pooler_url, autocommit=True) as other:
            for _ in range(4):
                cursor = await other.execute("SHOW statement_timeout", prepare=False)
                assert (await cursor.fetchone()) == ("0",)
        # The limit is enforced, and the connection stays fit for the next transaction.
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as slow:
            async with store._connection() as conn:
                await conn.execute("SELECT pg_sleep(5)")
        assert isinstance(slow.value.__cause__, psycopg.errors.QueryCanceled)
        assert time.monotonic() - started < 2
        assert await limits() == ("500ms", "8s")
    finally:
        await store.close()


async def test_an_abandoned_transaction_loses_its_locks_and_its_connection(pg_url: str) -> None:
    """A transaction stuck on a black-holed link: the caller is answered at the deadline, the
    connection is closed rather than pooled again, and Postgres, finding the transaction idle
    that long, ends it and frees the rows it had locked."""
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        store = PostgresStore(via(proxy, pg_url), transaction_timeout=1.5, pool_size=2)
        await store.open()
        try:
            async with store.transaction() as tx:
                session = await tx.insert_session("s" * 22, utc_now())

            async def stuck() -> None:
                async with store.transaction() as tx:
                    await tx.begin_call(session.id, utc_now(), None, "")  # locks the session row
                    # Not right after a pipelined batch, where only keepalives would end it (see
                    # begin_statement); the proxy's own end answers them.
                    await tx.get_user("u")
                    proxy.hold()
                    await tx.get_session(session.id)  # never answered

            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await stuck()
            waited = time.monotonic() - started
            assert isinstance(caught.value.__cause__, TimeoutError)
            assert 1.5 <= waited < 1.5 + MARGIN_S, waited
            assert store.pool_stats()["returns_bad"] == 1  # closed, not pooled again

            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
                locked_until = time.monotonic() + 10
                while True:  # the row stays locked until Postgres ends the idle transaction
                    try:
                        async with other.transaction():
                            await other.execute(
                                "SELECT id FROM sessions WHERE id = %s FOR UPDATE NOWAIT",
                                (session.id,),
                            )
                        break
                    except psycopg.errors.LockNotAvailable:
                        assert time.monotonic() < locked_until, "the lock was never freed"
                        await asyncio.sleep(0.1)
            freed_after = time.monotonic() - started
            print(
                f"measured: answered after {waited:.2f} s, row lock freed after {freed_after:.2f} s"
            )
        finally:
            proxy.release()
            await store.close()


# --- deadlocks are retried, not answered "briefly unavailable" ----------------------------------


async def _deadlocks(url: str, *, at_least: int = 0) -> int:
    """Deadlocks Postgres has broken in this database (its statistics lag a little: wait for
    `at_least`)."""
    give_up = time.monotonic() + 5
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            cursor = await conn.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
            row = await cursor.fetchone()
            assert row is not None
            if row[0] >= at_least or time.monotonic() > give_up:
                return int(row[0])
            await asyncio.sleep(0.1)


async def test_a_deadlocked_tool_call_runs_again_whole_and_answers_as_if_alone(
    pg_url: str, rules: AvailabilityRules, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers swap their appointments' times: A moves to B's time while B moves to A's.

    Made a deadlock for certain, whatever order the tools' own statements take: on its first
    try each call also locks the other's session row once both hold their own. Postgres breaks
    it by rolling one back; that one runs again from its first statement and, like the other,
    answers what it would have answered alone: the time is taken. Never "briefly unavailable".
    """
    store = PostgresStore(pg_url)
    await store.open()
    try:
        service = SchedulingService(store, rules, clock=clock)
        ann = await identified(service, "415 555 0101")
        bob = await identified(service, "415 555 0102")
        a = await call(service, "book_appointment", ann, start="2027-03-02T09:00:00-05:00")
        b = await call(service, "book_appointment", bob, start="2027-03-02T10:00:00-05:00")

        both_locked = asyncio.Event()
        first_tries: list[str] = []
        begin = SqlTransaction.begin_call

        async def begin_then_cross(self: SqlTransaction, session_id: str, *args: Any) -> Any:
            start = await begin(self, session_id, *args)
            if len(first_tries) < 2:
                first_tries.append(session_id)
                if len(first_tries) == 2:
                    both_locked.set()
                await asyncio.wait_for(both_locked.wait(), 10)
                other = bob if session_id == ann else ann
                await self._fetch("SELECT id FROM sessions WHERE id = :id FOR UPDATE", id=other)
            return start

        monkeypatch.setattr(SqlTransaction, "begin_call", begin_then_cross)
        before = await _deadlocks(pg_url)
        moves = await asyncio.gather(
            *(
                service.run_tool(
                    "modify_appointment",
                    {
                        "session_id": session,
                        "appointment_id": mine.appointment.id,
                        "new_start": theirs.appointment.start.isoformat(),
                    },
                    key(),
                )
                for session, mine, theirs in ((ann, a, b), (bob, b, a))
            ),
            return_exceptions=True,
        )
        monkeypatch.undo()
        assert sorted(first_tries) == sorted([ann, bob])
        assert await _deadlocks(pg_url, at_least=before + 1) == before + 1  # it happened
        assert [getattr(m, "code", m) for m in moves] == ["slot_taken", "slot_taken"]
        for session, booked in ((ann, a), (bob, b)):  # both originals stand, untouched
            listed = await call(service, "retrieve_appointments", session)
            assert [(x.id, x.start) for x in listed.appointments] == [
                (booked.appointment.id, booked.appointment.start)
            ]
    finally:
        await store.close()


async def test_a_tool_call_whose_connection_breaks_under_it_runs_again_and_books_once(
    pg_url: str, rules: AvailabilityRules, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres ends the connection of a booking in the middle of its transaction (as a restart,
    a failover or a pooler's recycle does) while Postgres itself answers: the booking runs again
    on a fresh connection and succeeds, once. Never "briefly unavailable" while Postgres is up."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        service = SchedulingService(store, rules, clock=clock)
        ann = await identified(service, "415 555 0103")
        killed: list[int] = []
        begin = SqlTransaction.begin_call

        async def begin_then_lose_the_link(self: SqlTransaction, *args: Any) -> Any:
            start = await begin(self, *args)
            if not killed:  # the first try only
                (row,) = await self._fetch("SELECT pg_backend_pid() AS pid")
                killed.append(row["pid"])
                async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
                    await admin.execute("SELECT pg_terminate_backend(%s)", (row["pid"],))
            return start

        monkeypatch.setattr(SqlTransaction, "begin_call", begin_then_lose_the_link)
        booked = await call(service, "book_appointment", ann, start="2027-03-02T11:00:00-05:00")
        monkeypatch.undo()
        assert len(killed) == 1  # it happened, on the first try
        listed = await call(service, "retrieve_appointments", ann)
        assert [a.id for a in listed.appointments] == [booked.appointment.id]
    finally:
        await store.close()


async def test_concurrent_swaps_through_the_server_never_answer_503(
    pg_url: str, tmp_path: Path
) -> None:
    rounds = 8
    with serving(tmp_path, server_env(pg_url, None)) as (server,):
        async with clients(server) as (http,):
            ann, bob = await new_session(http, phone(51)), await new_session(http, phone(52))
            day = local_day(2).isoformat()
            slots = (await ok(tool(http, "fetch_slots", ann, date=day, limit=2 * rounds)))["slots"]
            before = await _deadlocks(pg_url)
            answers: list[httpx.Response] = []
            for n in range(rounds):
                a = await ok(tool(http, "book_appointment", ann, slot_id=slots[2 * n]["slot_id"]))
                b = await ok(
                    tool(http, "book_appointment", bob, slot_id=slots[2 * n + 1]["slot_id"])
                )
                a, b = a["appointment"], b["appointment"]
                answers += await asyncio.gather(
                    tool(
                        http,
                        "modify_appointment",
                        ann,
                        appointment_id=a["id"],
                        new_start=b["start"],
                    ),
                    tool(
                        http,
                        "modify_appointment",
                        bob,
                        appointment_id=b["id"],
                        new_start=a["start"],
                    ),
                )
            deadlocks = await _deadlocks(pg_url) - before
    seen = statuses(answers)
    print(f"measured: {rounds} concurrent swaps: {dict(seen)}, {deadlocks} deadlock(s) retried")
    assert set(seen) <= {(200, None), (409, "slot_taken")}, seen


# --- a real server behind a link that fails -----------------------------------------------------


@contextlib.asynccontextmanager
async def callers_calling(
    http: httpx.AsyncClient, sessions: list[str]
) -> AsyncIterator[list[tuple[float, float, httpx.Response]]]:
    """Each session calls fetch_slots back to back until the block ends; (start, end, answer)."""
    answers: list[tuple[float, float, httpx.Response]] = []
    stop = asyncio.Event()
    day = local_day(1).isoformat()

    async def calling(session_id: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            answer = await tool(http, "fetch_slots", session_id, date=day, limit=2)
            answers.append((started, time.monotonic(), answer))

    loops = [asyncio.create_task(calling(s)) for s in sessions]
    try:
        yield answers
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), DEADLINE_S + MARGIN_S + 5)


async def test_black_holed_postgres_in_flight_and_new_calls_answer_503_within_the_deadline(
    pg_url: str, tmp_path: Path
) -> None:
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), None, **FAST)
        with serving(tmp_path, env) as (server,):
            async with clients(server) as (http,):
                http.timeout = httpx.Timeout(DEADLINE_S + MARGIN_S + 10)
                sessions = [await new_session(http, phone(60 + n)) for n in range(4)]
                async with callers_calling(http, sessions) as answers:
                    await asyncio.sleep(0.5)
                    proxy.hold()
                    held_at = time.monotonic()
                    while proxy.held_bytes == 0:  # a call is stuck mid-transaction
                        assert time.monotonic() < held_at + 2
                        await asyncio.sleep(0.01)
                    started = time.monotonic()
                    ready = await http.get("/readyz")
                    ready_s = time.monotonic() - started
                    await asyncio.sleep(2 * DEADLINE_S)  # new calls meet the black hole too
                    release_at = time.monotonic()
                proxy.release()
                recovered = await wait_ready(http, RECOVERY_S)
                await ok(tool(http, "fetch_slots", sessions[0], date=local_day(1).isoformat()))

    assert_store_unavailable(ready)
    assert ready.json()["error"]["message"].startswith("The database is not reachable")
    assert ready_s < 3 + MARGIN_S
    # In flight: begun before the hold and not done well after it, so stuck in it.
    in_flight = [(s, e, a) for s, e, a in answers if s < held_at and e > held_at + 0.5]
    new = [(s, e, a) for s, e, a in answers if held_at <= s and e <= release_at]
    assert in_flight and new
    for started, ended, answer in in_flight + new:
        assert_store_unavailable(answer)
        assert ended - started <= DEADLINE_S + MARGIN_S, ended - started
    print(
        f"measured: readyz 503 in {ready_s:.2f} s; in-flight calls answered 503 after "
        f"{sorted(round(e - s, 2) for s, e, _ in in_flight)} s, new ones after at most "
        f"{max(e - s for s, e, _ in new):.2f} s ({len(new)} calls); ready {recovered:.2f} s "
        "after release"
    )


async def test_refused_link_answers_503_and_heals_without_a_restart(
    pg_url: str, tmp_path: Path
) -> None:
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), None, **FAST)
        with serving(tmp_path, env) as (server,):
            async with clients(server) as (http,):
                sessions = [await new_session(http, phone(70 + n)) for n in range(3)]
                async with callers_calling(http, sessions) as answers:
                    await asyncio.sleep(0.5)
                    proxy.cut()
                    cut_at = time.monotonic()
                    await asyncio.sleep(2 * DEADLINE_S)
                    restore_at = time.monotonic()
                    proxy.restore()
                    await wait_ready(http, RECOVERY_S)
                    healed_at = time.monotonic()
                    await asyncio.sleep(0.5)
    during = [(s, e, a) for s, e, a in answers if cut_at < s and e < restore_at]
    assert during
    for started, ended, answer in during:
        assert_store_unavailable(answer)
        assert ended - started <= DEADLINE_S + MARGIN_S
    after = [a for s, _, a in answers if s > healed_at]
    assert after
    assert statuses(after) == {(200, None): len(after)}


async def test_no_503_when_postgres_drops_every_connection_and_is_back_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    """A restart or a failover closes every pooled connection; each is checked before use, and
    one found dead has the idle ones replaced, so no caller notices."""
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        env = server_env(via(proxy, pg_url), None, VOICEBOOK_DATABASE_POOL_SIZE="8")
        with serving(tmp_path, env) as (server,):
            async with clients(server) as (http,):
                sessions = [await new_session(http, phone(80 + n)) for n in range(8)]
                day = local_day(1).isoformat()

                async def concurrently() -> list[httpx.Response]:
                    return list(
                        await asyncio.gather(
                            *(tool(http, "fetch_slots", s, date=day, limit=2) for s in sessions)
                        )
                    )

                await concurrently()  # the pool holds several connections now
                answers, slowest = [], 0.0
                for _ in range(3):
                    proxy.reset()
                    started = time.monotonic()
                    answers += await concurrently()
                    for session_id in sessions:
                        answers.append(await tool(http, "retrieve_appointments", session_id))
                    slowest = max(slowest, time.monotonic() - started)
    assert statuses(answers) == {(200, None): len(answers)}, statuses(answers)
    print(f"measured: {len(answers)} calls after 3 resets, all 200; slowest round {slowest:.2f} s")


async def test_server_starts_without_postgres_and_is_ready_when_it_returns(
    pg_url: str, tmp_path: Path
) -> None:
    with TcpProxy(*postgres_target(pg_url)) as proxy:
        proxy.cut()
        # Housekeeping every 0.75 s (a quarter of 3 s idle), so rounds meet the outage.
        env = server_env(via(proxy, pg_url), None, VOICEBOOK_SESSION_IDLE_MINUTES="0.05", **FAST)
        with serving(tmp_path, env) as (server,):  # up once /healthz answers 200
            async with clients(server) as (http,):
                assert (await http.get("/healthz")).status_code == 200
                ready = await http.get("/readyz")
                assert_store_unavailable(ready)
                assert ready.json()["error"]["message"].startswith("The database is not reachable")
                assert_store_unavailable(await http.post("/session/start"))
                proxy.restore()
                recovered = await wait_ready(http, RECOVERY_S)
                session_id = await new_session(http, phone(90))
                await ok(tool(http, "fetch_slots", session_id, date=local_day(1).isoformat()))
                await asyncio.sleep(1)  # a housekeeping round
            log = server.log()
    assert "Traceback" not in log, log
    assert "does not answer yet" in log
    assert log.count("housekeeping waits for the database") == 1
    assert "housekeeping resumed" in log
    print(f"measured: ready {recovered:.2f} s after Postgres came back")
