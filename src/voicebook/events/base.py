"""The bus protocol and the per-process fan-out both buses deliver through."""

from __future__ import annotations

import asyncio
import enum
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from voicebook.store.base import EventRecord

QUEUE_SIZE = 1000
"""Events a subscriber may fall behind before it is cut off (it then resumes from the log)."""


class Signal(enum.Enum):
    OVERFLOW = "overflow"
    """The subscriber fell too far behind and receives nothing more."""
    WAKE = "wake"
    """Not an event: the reader should look around (client gone, time to re-read the log)."""


class Subscription:
    """One subscriber's bounded queue of a session's events (and signals to its reader).

    A subscriber that lets `QUEUE_SIZE` events pile up is cut off with `Signal.OVERFLOW`, so one
    slow consumer never slows the publisher or the other subscribers.
    """

    def __init__(self, session_id: str, size: int = QUEUE_SIZE) -> None:
        self.session_id = session_id
        self.overflowed = False
        self._queue: asyncio.Queue[EventRecord | Signal] = asyncio.Queue(size + 1)
        self._size = size

    def offer(self, event: EventRecord) -> None:
        if self.overflowed:
            return
        if self._queue.qsize() >= self._size:
            self.overflowed = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(Signal.OVERFLOW)
            return
        self._queue.put_nowait(event)

    def wake(self) -> None:
        if not self._queue.full():
            self._queue.put_nowait(Signal.WAKE)

    async def get(self) -> EventRecord | Signal:
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


class LocalSubscriptions:
    """What every bus shares: this process's subscribers, whom the bus feeds through
    `self._fanout.deliver` (at once in-process, or as events arrive from Redis)."""

    def __init__(self) -> None:
        self._fanout = LocalFanout()

    def subscribe(self, session_id: str) -> Subscription:
        subscription = Subscription(session_id)
        self._fanout.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, events: Sequence[EventRecord]) -> None: ...
    def subscribe(self, session_id: str) -> Subscription: ...
    def unsubscribe(self, subscription: Subscription) -> None: ...
