"""Redis pub/sub bus: events published by any worker reach subscribers on every worker.

Each process holds one pattern subscription for all sessions and fans messages out locally, so the
number of Redis connections does not grow with the number of WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import redis.asyncio as aioredis

from voicebook.config import redact_url
from voicebook.events.base import LocalSubscriptions
from voicebook.store.base import EventRecord

CHANNEL_PREFIX = "voicebook:events:"
log = logging.getLogger(__name__)


def encode(event: EventRecord) -> str:
    return json.dumps(
        {
            "session_id": event.session_id,
            "id": event.id,
            "type": event.type,
            "payload": event.payload,
            "created_at": event.created_at.isoformat(),
            "published_at": time.time(),
        },
        separators=(",", ":"),
    )


def decode(data: str | bytes) -> tuple[EventRecord, float]:
    raw = json.loads(data)
    event = EventRecord(
        raw["session_id"],
        int(raw["id"]),
        raw["type"],
        raw["payload"],
        datetime.fromisoformat(raw["created_at"]),
    )
    return event, float(raw["published_at"])


class RedisBus(LocalSubscriptions):
    def __init__(self, url: str, *, on_lag: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self.url = url
        self.display_url = redact_url(url)
        self._on_lag = on_lag
        self._client: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._client = aioredis.from_url(self.url, socket_connect_timeout=5)
        self._listener = asyncio.create_task(self._listen(), name="voicebook-redis-listener")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._client is not None:
            await self._client.aclose()

    async def _listen(self) -> None:
        """Keep one pattern subscription alive, reconnecting with backoff if Redis drops."""
        assert self._client is not None
        delay = 0.1
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                    self._ready.set()
                    delay = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") != "pmessage":
                            continue
                        event, published_at = decode(message["data"])
                        if self._on_lag is not None:
                            self._on_lag(max(0.0, time.time() - published_at))
                        self._fanout.deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: subscribers catch up from the log
                log.warning("redis subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def publish(self, events: Sequence[EventRecord]) -> None:
        assert self._client is not None, "bus not started"
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(CHANNEL_PREFIX + event.session_id, encode(event))
            await pipe.execute()
