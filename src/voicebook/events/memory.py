"""The default bus: delivery inside one process (one `voicebook serve` worker)."""

from __future__ import annotations

from collections.abc import Sequence

from voicebook.events.base import LocalSubscriptions
from voicebook.store.base import EventRecord


class InProcessBus(LocalSubscriptions):
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            self._fanout.deliver(event)
