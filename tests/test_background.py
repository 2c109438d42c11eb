"""Background work (DESIGN §7): the housekeeping loop outlives any error, and one process at a
time works a round — two servers on one Postgres end an idle session once, with one summary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from test_scale_and_outage import clients, new_session, ok, phone, server_env, serving, tool
from voicebook.config import Settings
from voicebook.server.app import HOUSEKEEPING_LOCK, create_app, housekeeping
from voicebook.server.context import ServerContext
from voicebook.store import exclusive
from voicebook.store.postgres import PostgresStore
from voicebook.store.sqlite import SqliteStore

IDLE_MINUTES = "0.02"
"""Sessions idle 1.2 s are ended; housekeeping then runs every 0.5 s."""


async def wait_for(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not within {within} s"
        await asyncio.sleep(0.1)


async def test_a_failing_round_is_logged_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'voicebook.db'}", session_idle_minutes=0.01
    )
    ctx: ServerContext = create_app(settings).state.ctx
    await ctx.store.open()
    try:
        stuck, idle = (await ctx.service.start_session()).id, (await ctx.service.start_session()).id

        # Round 1 fails outright; in round 2 one session cannot be ended, the other is.
        transaction = ctx.store.transaction
        failures = {"round": 1, stuck: 1}

        def failing_transaction(**kwargs: Any) -> Any:
            if failures["round"]:
                failures["round"] -= 1
                raise RuntimeError("the store broke in an unforeseen way")
            return transaction(**kwargs)

        end_session = ctx.service.end_session

        async def failing_end(session_id: str, reason: str = "ended") -> Any:
            if failures.get(session_id):
                failures[session_id] -= 1
                raise RuntimeError("this session's summary could not be built")
            return await end_session(session_id, reason)

        monkeypatch.setattr(ctx.store, "transaction", failing_transaction)
        monkeypatch.setattr(ctx.service, "end_session", failing_end)

        async def ended(session_id: str) -> bool:
            async with transaction(write=False) as tx:  # not the failing one
                session = await tx.get_session(session_id)
            return session is not None and session.state == "ended"

        caplog.set_level(logging.INFO, logger="voicebook")
        loop = asyncio.create_task(housekeeping(ctx))
        try:
            await wait_for(lambda: ended(idle), 10, "the idle session's end")
            await wait_for(lambda: ended(stuck), 10, "the other one's end, a round later")
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
    finally:
        await ctx.store.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "voicebook.server.app"]
    assert any(m.startswith("housekeeping round failed") for m in messages), messages
    assert any(m.startswith("idle session") and "could not be ended" in m for m in messages)
    assert stuck not in " ".join(messages)  # session ids are never logged whole


async def test_exclusive_admits_one_process_at_a_time(pg_url: str, sqlite_path: Path) -> None:
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    await first.open()
    await second.open()
    try:
        async with exclusive(first, "job") as mine:
            assert mine
            async with exclusive(second, "job") as theirs, exclusive(second, "other") as other:
                assert (theirs, other) == (False, True)

        async def free() -> bool:
            async with exclusive(second, "job") as theirs:
                return theirs

        # Released with the block: its connection is closed, which Postgres sees a moment later.
        await wait_for(free, 5, "the lock's release")
    finally:
        await first.close()
        await second.close()
    # SQLite is one machine whose writers already run one at a time: no lock to take.
    local = SqliteStore(sqlite_path)
    await local.open()
    try:
        async with exclusive(local, "job") as mine, exclusive(local, "job") as again:
            assert (mine, again) == (True, True)
    finally:
        await local.close()


@pytest.mark.postgres
async def test_two_servers_on_one_postgres_end_an_idle_session_once(
    pg_url: str, tmp_path: Path
) -> None:
    env = server_env(pg_url, None, VOICEBOOK_SESSION_IDLE_MINUTES=IDLE_MINUTES)
    holder = PostgresStore(pg_url)
    await holder.open()
    try:
        with serving(tmp_path, env, env) as servers:
            async with clients(*servers) as (on_a, on_b):
                # While another process holds the round, neither server works one.
                async with exclusive(holder, HOUSEKEEPING_LOCK) as held:
                    assert held
                    sessions = [await new_session((on_a, on_b)[n % 2], phone(n)) for n in range(6)]
                    for n, session_id in enumerate(sessions):
                        await ok(tool((on_b, on_a)[n % 2], "retrieve_appointments", session_id))
                    await asyncio.sleep(3)  # idle for 1.2 s, rounds every 0.5 s: all skipped
                    states = [(await ok(on_a.get(f"/session/{s}")))["state"] for s in sessions]
                    assert set(states) == {"active"}, states

                async def all_ended() -> bool:
                    states = [(await ok(on_b.get(f"/session/{s}")))["state"] for s in sessions]
                    return set(states) == {"ended"}

                await wait_for(all_ended, 15, "every idle session's end")
                await asyncio.sleep(1.5)  # more rounds on both servers: nothing more happens
                logs = [
                    [e["type"] for e in await ok(on_a.get(f"/session/{s}/events"))]
                    for s in sessions
                ]
    finally:
        await holder.close()
    for types in logs:
        counts = Counter(types)
        assert (counts["summary"], counts["session_closed"]) == (1, 1), types
        assert types[-3:] == ["status", "summary", "session_closed"], types
