"""The event bus on a real Redis, faults injected with a TCP proxy (DESIGN §5, §7).

Publishing never waits for Redis; a frozen or half-open subscription is noticed and made again;
what arrives on the channels is only news, and junk on them is skipped; deployments sharing one
Redis never hear each other. The end-to-end versions, through `voicebook serve` and a page's
WebSocket, are in test_bus_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from bus_support import FreezableProxy, eventually
from voicebook.config import Settings
from voicebook.events import BusUnavailable, TooManySubscribers, channel_prefix
from voicebook.events.base import ANY_EVENT, Subscription
from voicebook.events.memory import InProcessBus
from voicebook.events.redis import DEAD_S, OUTBOX_SIZE, TIMEOUT_S, RedisBus
from voicebook.events.wire import Malformed, decode, default_prefix
from voicebook.store.base import EventRecord

LOGGER = "voicebook.events.redis"
DETECT_S = DEAD_S + 4 * TIMEOUT_S + 5
"""Bound for noticing a dead subscription and subscribing again (generous: a busy machine)."""
NEVER_S = 10.0
"""What must not hang is given this long (a hang is forever; the work itself takes ms)."""


def event(session_id: str, n: int) -> EventRecord:
    return EventRecord(session_id, n, "status", {"state": "connected"}, datetime.now(timezone.utc))


def redis_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def via(proxy: FreezableProxy, url: str) -> str:
    return urlsplit(url)._replace(netloc=f"{proxy.host}:{proxy.port}").geturl()


@contextlib.asynccontextmanager
async def started(url: str, prefix: str, per_session: int = 10) -> AsyncIterator[RedisBus]:
    bus = RedisBus(url, prefix=prefix, per_session=per_session)
    await bus.start()
    try:
        await eventually(lambda: bus.subscribed, NEVER_S, "the bus subscribed")
        yield bus
    finally:
        await asyncio.wait_for(bus.close(), NEVER_S)


async def news(subscription: Subscription, within: float = NEVER_S) -> int:
    return await asyncio.wait_for(subscription.wait(), within)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A prefix of this test's own, so tests sharing the machine's Redis never hear each other."""
    return f"vbtest:{request.node.name[:40]}:{id(request)}:"


# --- wire format and naming -------------------------------------------------------------------


def test_default_prefix_is_one_per_database() -> None:
    same = {
        default_prefix("postgresql://app:secret@DB.example.com:5432/voicebook"),
        default_prefix("postgres://other@db.example.com/voicebook?sslmode=require"),
    }
    assert len(same) == 1
    others = {
        default_prefix("postgresql://db.example.com:5432/voicebook_staging"),
        default_prefix("postgresql://db2.example.com:5432/voicebook"),
        default_prefix("sqlite:////srv/a/voicebook.db"),
        default_prefix("sqlite:////srv/b/voicebook.db"),
    }
    assert len(others | same) == 5
    assert all(p.startswith("voicebook:") and p.endswith(":") for p in others | same)


def test_channel_prefix_setting_overrides_the_derived_one() -> None:
    db = "postgresql://127.0.0.1/x"
    assert channel_prefix(Settings(database_url=db)) == default_prefix(db)
    chosen = Settings(database_url=db, redis_channel_prefix="acme:prod:")
    assert channel_prefix(chosen) == "acme:prod:"


@pytest.mark.parametrize(
    ("channel", "data", "why"),
    [
        ("p:abc", b"not json", "not JSON"),
        ("p:abc", b"\xff\xfe", "not JSON"),
        ("p:abc", b"[1, 2]", "not a JSON object"),
        ("p:abc", b'{"id": "7", "published_at": 1}', "no valid event id"),
        ("p:abc", b'{"id": true, "published_at": 1}', "no valid event id"),
        ("p:abc", b'{"id": 0, "published_at": 1}', "no valid event id"),
        ("p:abc", b'{"id": 1e300, "published_at": 1}', "no valid event id"),
        ("p:abc", b'{"id": 5, "published_at": NaN}', "no valid publish time"),
        ("p:abc", b'{"id": 5}', "no valid publish time"),
        ("p:", b'{"id": 5, "published_at": 1}', "unexpected channel"),
        ("q:abc", b'{"id": 5, "published_at": 1}', "unexpected channel"),
        ("p:" + "x" * 65, b'{"id": 5, "published_at": 1}', "unexpected channel"),
    ],
)
def test_malformed_messages_are_named(channel: str, data: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        decode("p:", channel, data)


def test_a_message_carries_news_not_events() -> None:
    parsed = decode("p:", b"p:abc", b'{"id": 12, "published_at": 1700000000.5}')
    assert (parsed.session_id, parsed.event_id, parsed.published_at) == ("abc", 12, 1700000000.5)


# --- the in-process bus -----------------------------------------------------------------------


async def test_in_process_news_coalesces_and_the_cap_per_session_holds() -> None:
    bus = InProcessBus(per_session=2)
    first, second = bus.subscribe("s1"), bus.subscribe("s1")
    with pytest.raises(TooManySubscribers):
        bus.subscribe("s1")
    other = bus.subscribe("s2")  # the cap is per session
    await bus.publish([event("s1", n) for n in range(1, 2001)])
    assert await news(first) == 2000  # two thousand events are one number to a slow reader
    assert await news(second) == 2000
    bus.unsubscribe(first)
    bus.subscribe("s1")  # a place freed
    other.wake()
    assert await news(other) == 0  # woken, but no news


# --- the Redis bus ----------------------------------------------------------------------------


async def test_news_crosses_workers(redis_url: str, prefix: str) -> None:
    async with started(redis_url, prefix) as a, started(redis_url, prefix) as b:
        on_a = a.subscribe("sess-1")
        await b.publish([event("sess-1", 1), event("sess-1", 2)])
        assert await news(on_a) == 2
        on_b = b.subscribe("sess-1")
        await a.publish([event("sess-1", 3)])
        assert await news(on_b) == 3  # at once, from its own process
        assert await news(on_a) == 3  # its own echo from Redis is the same news again


async def test_publishing_never_waits_for_a_frozen_redis(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FreezableProxy(*redis_target(redis_url)) as proxy:
        async with (
            started(via(proxy, redis_url), prefix) as frozen,
            started(redis_url, prefix) as other,
        ):
            local = frozen.subscribe("sess-f")
            remote = other.subscribe("sess-f")
            proxy.hold()
            with caplog.at_level(logging.WARNING, LOGGER):
                # More news than the outbox holds, while Redis answers nothing: every call
                # returns at once (a hang would be forever: the hold lasts until released).
                for n in range(1, OUTBOX_SIZE + 50):
                    await asyncio.wait_for(frozen.publish([event(f"sess-{n}", n)]), NEVER_S)
                await asyncio.wait_for(frozen.publish([event("sess-f", 7)]), NEVER_S)
                assert await news(local) == 7  # this worker's pages hear at once
                await eventually(
                    lambda: "outbox full" in caplog.text, NEVER_S, "the dropped news is logged"
                )
                await eventually(
                    lambda: "publishing" in caplog.text and "failed" in caplog.text,
                    DETECT_S,
                    "the failed publish is logged",
                )
                with pytest.raises(BusUnavailable):
                    await asyncio.wait_for(frozen.ping(), NEVER_S)
            proxy.release()
            await eventually(lambda: frozen.subscribed, DETECT_S, "subscribed again")
            await frozen.publish([event("sess-f", 8)])
            assert await news(remote, DETECT_S) >= 8  # live fan-out resumed
            await asyncio.wait_for(frozen.ping(), NEVER_S)


async def test_a_half_open_subscription_is_noticed_and_made_again(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FreezableProxy(*redis_target(redis_url)) as proxy:
        async with started(via(proxy, redis_url), prefix) as a, started(redis_url, prefix) as b:
            on_a = a.subscribe("sess-h")
            with caplog.at_level(logging.INFO, LOGGER):
                proxy.freeze()  # the links A has go silent; new ones work
                await eventually(
                    lambda: "subscription" in caplog.text and "lost" in caplog.text,
                    DETECT_S,
                    "the dead subscription is noticed",
                )
                # Its pages are told to read the log: news may have been lost meanwhile.
                assert await news(on_a) == ANY_EVENT
                await eventually(
                    lambda: "restored" in caplog.text, DETECT_S, "the subscription is made again"
                )
            assert a.subscribed
            fresh = a.subscribe("sess-h")  # (on_a was told to read the log once more)
            await b.publish([event("sess-h", 41)])
            assert await news(fresh, DETECT_S) == 41


async def test_junk_on_the_channel_is_skipped_and_the_subscription_lives(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with started(redis_url, prefix) as bus:
        sub = bus.subscribe("sess-j")
        raw = aioredis.from_url(redis_url)
        try:
            with caplog.at_level(logging.WARNING, LOGGER):
                await raw.publish(prefix + "sess-j", b"\x00 not json at all")
                await raw.publish(prefix + "sess-j", '{"id": "lots", "published_at": 1}')
                await raw.publish(prefix + "sess-j", '{"id": 3, "published_at": 1}')
                assert await news(sub) == 3
                assert "skipped a malformed message on redis: not JSON" in caplog.text
            assert bus.subscribed
        finally:
            await raw.aclose()


async def test_deployments_sharing_a_redis_never_hear_each_other(
    redis_url: str, prefix: str
) -> None:
    mine, theirs = prefix + "a:", prefix + "b:"
    async with started(redis_url, mine) as bus:
        sub = bus.subscribe("sess-x")
        raw = aioredis.from_url(redis_url)
        try:
            # One connection publishes both, so Redis delivers them in this order: had the
            # other deployment's message reached us, the news would be 99.
            await raw.publish(theirs + "sess-x", '{"id": 99, "published_at": 1}')
            await raw.publish(mine + "sess-x", '{"id": 5, "published_at": 1}')
            assert await news(sub) == 5
        finally:
            await raw.aclose()


async def test_start_returns_while_redis_is_away_and_the_bus_comes_up_later(
    redis_url: str, prefix: str
) -> None:
    with FreezableProxy(*redis_target(redis_url)) as proxy:
        proxy.cut()
        bus = RedisBus(via(proxy, redis_url), prefix=prefix, per_session=10)
        await asyncio.wait_for(bus.start(), NEVER_S)
        try:
            sub = bus.subscribe("sess-s")
            with pytest.raises(BusUnavailable):
                await asyncio.wait_for(bus.ping(), NEVER_S)
            assert await news(sub, DETECT_S) == ANY_EVENT  # pages poll the log meanwhile
            proxy.restore()
            await eventually(lambda: bus.subscribed, DETECT_S, "subscribed once Redis is up")
            await asyncio.wait_for(bus.ping(), NEVER_S)
        finally:
            await asyncio.wait_for(bus.close(), NEVER_S)
