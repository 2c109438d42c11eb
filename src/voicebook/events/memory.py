"""The default bus: news inside one process (one `voicebook serve` worker)."""

from __future__ import annotations

from collections.abc import Sequence

from voicebook.events.base import LocalSubscriptions, newest
from voicebook.store.base import EventRecord


class InProcessBus(LocalSubscriptions):
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, events: Sequence[EventRecord]) -> None:
        for session_id, event_id in newest(events).items():
            self._fanout.notify(session_id, event_id)

    async def ping(self) -> None:
        return None  # nothing outside this process to reach
