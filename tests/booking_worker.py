"""A separate OS process that races bookings of one slot (used by test_concurrency).

Usage: python booking_worker.py DATABASE_URL COUNT PHONE_PREFIX START_ISO
Sets up COUNT identified sessions, prints `ready`, waits for a line on stdin (the start signal,
so every worker races at once however long its setup took), books, and prints one JSON line:
{"ok": [appointment ids], "codes": {code: count}, "module": the voicebook package it ran}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import voicebook
from voicebook.config import Settings
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.hours import parse_hours
from voicebook.scheduling.service import SchedulingService
from voicebook.store import create_store

RULES = AvailabilityRules(
    zone=ZoneInfo("America/New_York"),
    weekly=parse_hours("mon-fri 09:00-17:00, sat 10:00-14:00"),
    slot_minutes=30,
    min_notice_minutes=60,
    horizon_days=30,
)
NOW = datetime(2027, 3, 1, 13, 15, tzinfo=timezone.utc)


async def main(url: str, count: int, prefix: str, start: str) -> None:
    store = create_store(Settings(database_url=url))
    await store.open()
    service = SchedulingService(store, RULES, clock=lambda: NOW)
    sessions = []
    for i in range(count):
        session = await service.start_session()
        phone = f"{prefix}{i:02d}"
        await service.run_tool("identify_user", {"session_id": session.id, "phone": phone})
        sessions.append(session.id)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def book(session_id: str) -> str:
        try:
            outcome = await service.run_tool(
                "book_appointment", {"session_id": session_id, "start": start}
            )
        except DomainError as error:
            return "code:" + error.code
        return outcome.response.appointment.id  # type: ignore[attr-defined]

    results = await asyncio.gather(*(book(s) for s in sessions))
    await store.close()
    codes = Counter(r[5:] for r in results if r.startswith("code:"))
    ok = [r for r in results if not r.startswith("code:")]
    print(json.dumps({"ok": ok, "codes": codes, "module": voicebook.__file__}), flush=True)


if __name__ == "__main__":
    url, count, prefix, start = sys.argv[1:5]
    asyncio.run(main(url, int(count), prefix, start))
