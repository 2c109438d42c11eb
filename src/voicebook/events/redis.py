"""Redis pub/sub bus: news published by any worker wakes subscribers on every worker.

Each process holds one pattern subscription for its deployment's channels and fans news out
locally, so the number of Redis connections does not grow with the number of WebSockets.

Redis is never in the reply path: `publish` tells this process's subscribers at once and leaves
the message in a bounded outbox that a background task drains (full: the news is dropped and
logged; subscribers catch up from the log). Every socket operation has a timeout, and the
subscription is watched: when Redis has said nothing for a while it is pinged, and a connection
that does not answer (a frozen host, a half-open link) is dropped and made again. While it is
down, every local subscriber is told to read the log each time a reconnection is tried, so pages
stay current through an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from voicebook.config import redact_url
from voicebook.events import wire
from voicebook.events.base import BusUnavailable, LocalSubscriptions, newest
from voicebook.events.notes import Throttled
from voicebook.store.base import EventRecord

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
"""Connecting, and waiting for any answer from Redis: a frozen Redis costs this, never a hang."""
HEALTH_CHECK_S = 10.0
"""A pooled connection idle this long is pinged before use (a dead one is replaced)."""
QUIET_S = 1.0
"""The subscriber pings Redis after hearing nothing for this long..."""
DEAD_S = 3.0
"""...and gives the connection up when nothing at all has come for this long."""
RECONNECT_MAX_S = 2.0
OUTBOX_SIZE = 1000
"""Messages waiting for Redis; beyond this news is dropped (and logged)."""
BATCH = 200
PUBLISH_DEADLINE_S = 3 * TIMEOUT_S
"""A batch that has not gone out by then is given up (whatever the client library does)."""
ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisBus(LocalSubscriptions):
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        per_session: int,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(per_session)
        self.url = url
        self.display_url = redact_url(url)
        self.prefix = prefix
        self._on_lag = on_lag
        timeouts: dict[str, Any] = {
            "socket_timeout": TIMEOUT_S,
            "socket_connect_timeout": TIMEOUT_S,
            "socket_keepalive": True,
        }
        # Commands (publish, ping): one quick retry on a fresh connection.
        self._client = aioredis.from_url(
            url,
            health_check_interval=HEALTH_CHECK_S,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            **timeouts,
        )
        # The subscription: no retries inside the library, so every reconnection goes through
        # `_listen`, which then tells subscribers to read what they may have missed.
        self._subscriber = aioredis.from_url(url, retry=Retry(NoBackoff(), 0), **timeouts)
        self._outbox: asyncio.Queue[tuple[str, int]] = asyncio.Queue(OUTBOX_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = False
        self._lost_at: float | None = None
        self._publish_failed = Throttled(log)
        self._dropped = Throttled(log)
        self._malformed = Throttled(log)
        self._attempt_failed = Throttled(log)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="voicebook-redis-listener"),
            asyncio.create_task(self._drain(), name="voicebook-redis-publisher"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in (self._client, self._subscriber):
            with contextlib.suppress(*ERRORS):
                await client.aclose()

    async def ping(self) -> None:
        if not self.subscribed:
            raise BusUnavailable()
        try:
            await asyncio.wait_for(self._client.ping(), TIMEOUT_S)
        except ERRORS:
            raise BusUnavailable() from None

    # --- publishing -----------------------------------------------------------------------------

    async def publish(self, events: Sequence[EventRecord]) -> None:
        for session_id, event_id in newest(events).items():
            self._fanout.notify(session_id, event_id)
            try:
                self._outbox.put_nowait((session_id, event_id))
            except asyncio.QueueFull:
                self._dropped.warning(
                    "redis outbox full (%d waiting): news of session %s… dropped; other workers' "
                    "pages catch up from the log",
                    OUTBOX_SIZE,
                    session_id[:6],
                )

    async def _drain(self) -> None:
        """Send what the outbox holds, a pipeline at a time; failures are logged, not retried."""
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                await asyncio.wait_for(self._send(batch), PUBLISH_DEADLINE_S)
            except ERRORS as exc:
                self._publish_failed.warning(
                    "publishing %d message(s) to redis %s failed (%s); other workers' pages "
                    "catch up from the log",
                    len(batch),
                    self.display_url,
                    type(exc).__name__,
                )

    async def _send(self, batch: list[tuple[str, int]]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for session_id, event_id in batch:
                pipe.publish(self.prefix + session_id, wire.encode(event_id))
            await pipe.execute()

    # --- subscribing ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep the pattern subscription alive: reconnect with backoff whenever it dies."""
        delay = 0.2
        while True:
            try:
                await self._subscribe_once()  # returns only by raising
            except ERRORS as exc:
                if self.subscribed:  # it was working: say so once, then retry quietly
                    self.subscribed, self._lost_at, delay = False, time.monotonic(), 0.2
                    log.warning(
                        "redis subscription to %s lost (%s); pages read the log until it is "
                        "back; reconnecting",
                        self.display_url,
                        str(exc) or type(exc).__name__,
                    )
                else:
                    self._attempt_failed.warning(
                        "cannot subscribe to redis %s (%s); retrying",
                        self.display_url,
                        str(exc) or type(exc).__name__,
                    )
            self._fanout.notify_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _subscribe_once(self) -> None:
        """One connection's life: subscribe, then hand news on until Redis stops answering."""
        loop = asyncio.get_running_loop()
        async with self._subscriber.pubsub() as pubsub:
            await pubsub.psubscribe(self.prefix + "*")
            heard = loop.time()
            while True:
                message = await pubsub.get_message(timeout=QUIET_S)
                now = loop.time()
                if message is not None:
                    heard = now
                    self._receive(message)
                elif now - heard >= DEAD_S:
                    raise asyncio.TimeoutError(f"no answer in {DEAD_S:g} s")
                else:
                    await pubsub.ping()

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "psubscribe":
            if not self.subscribed:
                self.subscribed = True
                if self._lost_at is None:
                    log.info("redis subscription to %s is live", self.display_url)
                else:
                    log.warning(
                        "redis subscription to %s restored after %.1f s",
                        self.display_url,
                        time.monotonic() - self._lost_at,
                    )
                    self._lost_at = None
                self._fanout.notify_all()  # whatever was published while we were away
            return
        if kind != "pmessage":
            return  # our pings' answers: proof of life, nothing more
        try:
            news = wire.decode(self.prefix, message["channel"], message["data"])
        except wire.Malformed as exc:
            self._malformed.warning("skipped a malformed message on redis: %s", exc)
            return
        if self._on_lag is not None:
            self._on_lag(max(0.0, time.time() - news.published_at))
        self._fanout.notify(news.session_id, news.event_id)
