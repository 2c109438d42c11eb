"""What the routes share: settings, store, service, bus, metrics and limits (one per app)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from voicebook.config import Settings
from voicebook.events import EventBus
from voicebook.scheduling.service import SchedulingService
from voicebook.server.limits import RateLimiter
from voicebook.server.observability import Metrics
from voicebook.store import Store


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    service: SchedulingService
    bus: EventBus
    metrics: Metrics
    session_starts: RateLimiter


async def context(request: Request) -> ServerContext:
    """FastAPI dependency: the app's context."""
    return request.app.state.ctx
