"""Races for one slot: exactly one booking wins, every other caller hears `slot_taken`."""

from __future__ import annotations

import asyncio
import json
import os
import select
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
SRC = Path(__file__).resolve().parent.parent / "src"
"""This checkout's code: what the workers must run."""
WORKER_TIMEOUT_S = 120.0


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


def _wait_for_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The worker's next stdout line, or a failure (with its stderr) past `deadline`."""
    remaining = deadline - time.monotonic()
    ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
    assert ready, f"worker silent for {WORKER_TIMEOUT_S} s"
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"worker exited: {process.stderr.read() if process.stderr else ''}"
    return line.strip()


def test_several_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    """Four processes race for one slot on one SQLite file. The workers import this checkout's
    `src` (not whatever voicebook is installed), start booking together once all are set up,
    and are killed if anything goes wrong."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(WORKER.parent)])}
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    processes: list[subprocess.Popen[str]] = []
    try:
        for p in range(1, 5):
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), url, "8", f"+1 415 555 0{p}", SLOT],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=tmp_path,
                )
            )
        for process in processes:
            assert _wait_for_line(process, deadline) == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [json.loads(_wait_for_line(process, deadline)) for process in processes]
        for process in processes:
            assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert {Path(r["module"]).resolve().parent.parent for r in reports} == {SRC.resolve()}
    wins = [appointment for r in reports for appointment in r["ok"]]
    codes: dict[str, int] = {}
    for report in reports:
        for code, count in report["codes"].items():
            codes[code] = codes.get(code, 0) + count
    assert len(wins) == 1
    assert codes == {"slot_taken": 31}
