"""The bus protocol and the per-process fan-out both buses deliver through."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from voicebook.store.base import EventRecord

QUEUE_SIZE = 1000
"""Events a subscriber may fall behind before it is cut off (it then resumes from the log)."""


class Subscription:
    """One subscriber's bounded queue of a session's events.

    A subscriber that lets `QUEUE_SIZE` events pile up is marked `overflowed` and stops receiving,
    so one slow consumer never slows the publisher or the other subscribers.
    """

    def __init__(self, session_id: str, size: int = QUEUE_SIZE) -> None:
        self.session_id = session_id
        self.overflowed = False
        self._queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(size)

    def offer(self, event: EventRecord) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._queue.get_nowait()
            self._queue.put_nowait(None)  # wakes the reader so it can close

    async def get(self) -> EventRecord | None:
        """The next event, or None once the subscriber overflowed."""
        if self.overflowed and self._queue.empty():
            return None
        return await self._queue.get()


class LocalFanout:
    """Session id → this process's subscriptions."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def add(self, subscription: Subscription) -> None:
        self._subscribers[subscription.session_id].add(subscription)

    def remove(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.session_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.session_id]

    def deliver(self, event: EventRecord) -> None:
        for subscription in tuple(self._subscribers.get(event.session_id, ())):
            subscription.offer(event)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


class EventBus(Protocol):
    name: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, events: Sequence[EventRecord]) -> None: ...
    def subscribe(self, session_id: str) -> Subscription: ...
    def unsubscribe(self, subscription: Subscription) -> None: ...
