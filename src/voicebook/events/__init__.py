"""Session event fan-out: news of committed events reaches every WebSocket of their session, on
any worker.

A bus only carries news after the transaction committed (DESIGN §5), and only news: the log in the
database is the truth, and a subscriber told of new events reads them from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from voicebook.events.base import BusUnavailable, EventBus, Subscription, TooManySubscribers

if TYPE_CHECKING:
    from voicebook.config import Settings

__all__ = [
    "BusUnavailable",
    "EventBus",
    "Subscription",
    "TooManySubscribers",
    "channel_prefix",
    "create_bus",
]


def channel_prefix(settings: Settings) -> str:
    """`VOICEBOOK_REDIS_CHANNEL_PREFIX`, else one derived from the database (see `wire`)."""
    from voicebook.events.wire import default_prefix

    return settings.redis_channel_prefix or default_prefix(settings.resolved_database_url())


def create_bus(settings: Settings, on_lag: Callable[[float], None] | None = None) -> EventBus:
    """Redis pub/sub when `VOICEBOOK_REDIS_URL` is set, else in-process (one worker only).

    `on_lag` observes each message's publish-to-arrival time (Redis only: in-process is
    immediate).
    """
    per_session = settings.websockets_per_session
    if settings.redis_url:
        from voicebook.events.redis import RedisBus

        return RedisBus(
            settings.redis_url,
            prefix=channel_prefix(settings),
            per_session=per_session,
            on_lag=on_lag,
        )
    from voicebook.events.memory import InProcessBus

    return InProcessBus(per_session)
