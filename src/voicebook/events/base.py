"""The bus protocol and the per-process fan-out both buses deliver through.

What a bus carries is news, not events: "session S has events up to id N". A subscriber told so
reads the log after the last id it has; only what the log holds ever reaches a page, so a message
forged on the bus (or a late, lost or repeated one) can wake a reader but never put words on its
page or make it skip real events (DESIGN §5: the log is the truth).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from voicebook.scheduling.errors import DomainError
from voicebook.store.base import EventRecord

ANY_EVENT = 2**62
"""A hint meaning "anything may have been missed": the reader reads the log (e.g. after the bus
came back), whatever ids it already has."""


class BusUnavailable(DomainError):
    code = "bus_unavailable"
    status = 503
    default_message = (
        "Redis, which carries live events between workers, is unreachable; pages catch up from "
        "the log until it is back."
    )


class TooManySubscribers(Exception):
    """The session already has as many subscribers on this process as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} per session")
        self.limit = limit


class Subscription:
    """One reader's mailbox for a session: the highest event id it was told of, and a wake-up.

    News coalesces into one number, so a subscriber holds no queue: however far behind it is or
    however many messages arrive, it costs an int, and the next read of the log catches up.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._hint = 0
        self._woken = asyncio.Event()

    def notify(self, event_id: int) -> None:
        """The session has committed events up to `event_id` (or says so: it is checked)."""
        self._hint = max(self._hint, event_id)
        self._woken.set()

    def wake(self) -> None:
        """Not news: the reader should look around (client gone, time to re-read the log)."""
        self._woken.set()

    async def wait(self) -> int:
        """Wait to be woken; the highest id told of since the last wait (0 if none)."""
        await self._woken.wait()
        self._woken.clear()
        hint, self._hint = self._hint, 0
        return hint


class LocalFanout:
    """Session id → this process's subscriptions, at most `per_session` each."""

    def __init__(self, per_session: int) -> None:
        self.per_session = per_session
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def add(self, subscription: Subscription) -> None:
        subscribers = self._subscribers[subscription.session_id]
        if len(subscribers) >= self.per_session:
            raise TooManySubscribers(self.per_session)
        subscribers.add(subscription)

    def remove(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.session_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.session_id]

    def notify(self, session_id: str, event_id: int) -> None:
        for subscription in tuple(self._subscribers.get(session_id, ())):
            subscription.notify(event_id)

    def notify_all(self) -> None:
        """Every subscriber reads the log: news may have been lost (the bus was away)."""
        for subscribers in tuple(self._subscribers.values()):
            for subscription in tuple(subscribers):
                subscription.notify(ANY_EVENT)


def newest(events: Sequence[EventRecord]) -> dict[str, int]:
    """Session id → the highest event id among `events`: the news they make."""
    news: dict[str, int] = {}
    for event in events:
        news[event.session_id] = max(news.get(event.session_id, 0), event.id)
    return news


class LocalSubscriptions:
    """What every bus shares: this process's subscribers, whom the bus tells of news through
    `self._fanout` (at once for events published here, or as messages arrive from Redis)."""

    def __init__(self, per_session: int) -> None:
        self._fanout = LocalFanout(per_session)

    def subscribe(self, session_id: str) -> Subscription:
        """A new subscription; `TooManySubscribers` when the session has its fill here."""
        subscription = Subscription(session_id)
        self._fanout.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)


class EventBus(Protocol):
    async def start(self) -> None:
        """Begin carrying news; returns at once, even when Redis is away (it reconnects)."""

    async def close(self) -> None: ...

    async def publish(self, events: Sequence[EventRecord]) -> None:
        """Tell subscribers of committed events; returns at once and never raises."""

    async def ping(self) -> None:
        """Raise `BusUnavailable` (within a few seconds) when news cannot travel."""

    def subscribe(self, session_id: str) -> Subscription: ...
    def unsubscribe(self, subscription: Subscription) -> None: ...
