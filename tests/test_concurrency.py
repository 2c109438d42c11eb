"""Races for one slot: exactly one booking wins, every other caller hears `slot_taken`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import identified
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.service import SchedulingService
from voicebook.store.postgres import PostgresStore

SLOT = "2027-03-02T11:00:00-05:00"
WORKER = Path(__file__).with_name("booking_worker.py")


async def _race(service: SchedulingService, sessions: list[str]) -> tuple[list[Any], list[Any]]:
    async def book(session_id: str) -> Any:
        try:
            return await service.run_tool(
                "book_appointment", {"session_id": session_id, "start": SLOT}, f"k-{session_id}"
            )
        except DomainError as error:
            return error

    results = await asyncio.gather(*(book(s) for s in sessions), return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    return wins, losses


async def test_fifty_concurrent_bookings_on_postgres(
    pg_url: str, rules: AvailabilityRules, clock: Any
) -> None:
    store = PostgresStore(pg_url, pool_size=25)
    await store.open()
    try:
        service = SchedulingService(store, rules, clock=clock)
        sessions = [await identified(service, f"+1 415 555 01{i:02d}") for i in range(50)]
        wins, losses = await _race(service, sessions)
        assert len(wins) == 1
        assert len(losses) == 49
        assert {type(e).__name__ for e in losses} == {"SlotTaken"}
        assert all(e.extra["alternatives"] for e in losses)
        async with store.transaction(write=False) as tx:
            winner = await tx.get_appointment(wins[0].response.appointment.id)
            rows = await tx.list_appointments(winner.user_id, since=None, include_cancelled=True)
        assert [r.status for r in rows] == ["confirmed"]
        # Every loser's failure is on its own session's log as a failed tool call.
        failed = 0
        for session_id in sessions:
            events = await service.session_events(session_id)
            failed += sum(e.type == "tool_call" and e.payload["status"] == "failed" for e in events)
        assert failed == 49
    finally:
        await store.close()


async def test_duplicate_deliveries_of_one_call_book_once(
    pg_url: str, rules: AvailabilityRules, clock: Any
) -> None:
    """The same tool call delivered ten times at once (same key) books once, answers ten times."""
    store = PostgresStore(pg_url, pool_size=12)
    await store.open()
    try:
        service = SchedulingService(store, rules, clock=clock)
        session = await identified(service)
        request = {"session_id": session, "start": SLOT}
        outcomes = await asyncio.gather(
            *(service.run_tool("book_appointment", dict(request), "call_dup") for _ in range(10))
        )
        ids = {o.response.appointment.id for o in outcomes}
        assert len(ids) == 1
        assert sum(not o.replayed for o in outcomes) == 1
        events = await service.session_events(session)
        booked = [e for e in events if e.payload.get("name") == "book_appointment"]
        assert len(booked) == 1
    finally:
        await store.close()


def test_several_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    start_at = time.time() + 4.0
    env = {**os.environ, "PYTHONPATH": str(WORKER.parent)}
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(start_at), "8", f"+1 415 555 0{p}", SLOT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(1, 5)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wins = [appointment for r in reports for appointment in r["ok"]]
    codes: dict[str, int] = {}
    for report in reports:
        for code, count in report["codes"].items():
            codes[code] = codes.get(code, 0) + count
    assert len(wins) == 1
    assert codes == {"slot_taken": 31}
