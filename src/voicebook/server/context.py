"""What the routes share: settings, store, service, bus, metrics and limits (one per app;
the routes get it through `dependencies.context`)."""

from __future__ import annotations

from dataclasses import dataclass

from voicebook.config import Settings
from voicebook.events import EventBus
from voicebook.scheduling.service import SchedulingService
from voicebook.server.limits import BrowserLimits
from voicebook.server.observability import Metrics
from voicebook.store import Store


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    service: SchedulingService
    bus: EventBus
    metrics: Metrics
    limits: BrowserLimits
