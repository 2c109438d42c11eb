"""Session event fan-out: committed events reach every WebSocket of their session, on any worker.

A bus only carries events after their transaction committed (DESIGN §5); the log in the database is
the truth, and a subscriber that misses something (a gap in ids, an overflow) catches up from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from voicebook.events.base import EventBus, Subscription

if TYPE_CHECKING:
    from voicebook.config import Settings

__all__ = ["EventBus", "Subscription", "create_bus"]


def create_bus(settings: Settings, on_lag: Callable[[float], None] | None = None) -> EventBus:
    """Redis pub/sub when `VOICEBOOK_REDIS_URL` is set, else in-process (one worker only).

    `on_lag` observes each event's publish-to-arrival time (Redis only: in-process is immediate).
    """
    if settings.redis_url:
        from voicebook.events.redis import RedisBus

        return RedisBus(settings.redis_url, on_lag=on_lag)
    from voicebook.events.memory import InProcessBus

    return InProcessBus()
