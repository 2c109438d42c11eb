"""The default bus: delivery inside one process (one `voicebook serve` worker)."""

from __future__ import annotations

from collections.abc import Sequence

from voicebook.events.base import LocalFanout, Subscription
from voicebook.store.base import EventRecord


class InProcessBus:
    def __init__(self) -> None:
        self._fanout = LocalFanout()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            self._fanout.deliver(event)

    def subscribe(self, session_id: str) -> Subscription:
        subscription = Subscription(session_id)
        self._fanout.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)
