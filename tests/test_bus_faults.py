"""Redis faults and hostile Redis clients, end to end (DESIGN §5, §7).

Two real `voicebook serve` workers on one Postgres, Redis between them for fan-out, a page's
WebSocket on worker A and the tool calls on worker B. Redis is put behind a TCP proxy and frozen
(every byte held) or half-opened (the links open go silent, new ones work); other clients publish
junk and forgeries straight onto the deployment's channels with redis-py; a second deployment
shares the Redis server. Throughout, tool calls answer at once, the page receives exactly the log
(nothing lost, repeated, invented or skipped), and live fan-out comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from bus_support import FreezableProxy, eventually, eventually_async
from servers import Server
from test_bus import redis_target, via
from test_scale_and_outage import clients, new_session, ok, phone, server_env, serving, tool
from voicebook.events.redis import TIMEOUT_S as REDIS_TIMEOUT_S
from voicebook.events.wire import default_prefix

pytestmark = pytest.mark.postgres

LIVE_S = 10.0
"""A live event arrives within this; without live fan-out it would wait for the 15 s re-read."""
NEVER_S = 30.0
"""Bound on waits for things that must happen at all."""


class Page:
    """A page's WebSocket, collecting what it is sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def until(self, event_id: int, within: float = NEVER_S) -> list[dict[str, Any]]:
        """Receive until the event with this id has arrived; everything received so far."""
        deadline = time.monotonic() + within
        while not self.events or self.events[-1]["id"] < event_id:
            left = deadline - time.monotonic()
            assert left > 0, f"event {event_id} not on the page within {within} s: {self.ids()}"
            self.events.append(json.loads(await asyncio.wait_for(self.ws.recv(), left)))
        return self.events

    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]


@contextlib.asynccontextmanager
async def page(server: Server, session_id: str):  # type: ignore[no-untyped-def]
    async with connect(f"{server.ws_url}/session/{session_id}/events", open_timeout=10) as ws:
        yield Page(ws)


async def timed_call(http: httpx.AsyncClient, session_id: str, answers: list[float]) -> int:
    """One tool call (it must succeed); its time goes to `answers`; the session's newest id."""
    started = time.monotonic()
    await ok(tool(http, "fetch_slots", session_id, limit=2))
    answers.append(time.monotonic() - started)
    return await newest_id(http, session_id)


async def newest_id(http: httpx.AsyncClient, session_id: str) -> int:
    return (await ok(http.get(f"/session/{session_id}/events", params={"limit": 500})))[-1]["id"]


async def assert_page_is_the_log(p: Page, http: httpx.AsyncClient, session_id: str) -> None:
    log = await ok(http.get(f"/session/{session_id}/events", params={"limit": 500}))
    assert p.ids() == list(range(1, len(p.events) + 1)), f"lost or repeated: {p.ids()}"
    assert p.events == log[: len(p.events)]


async def ready(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.TimeoutException):
        return (await http.get("/readyz", timeout=5)).status_code == 200
    return False


async def bus_unavailable(http: httpx.AsyncClient) -> bool:
    answer = await http.get("/readyz", timeout=10)
    if answer.status_code != 503:
        return False
    error = answer.json()["error"]
    assert error["message"].endswith(".")
    return error["code"] == "bus_unavailable"


async def _noticed_the_loss(server: Server) -> bool:
    return "lost (no answer" in server.log()


async def test_frozen_redis_never_delays_a_reply_and_the_page_misses_nothing(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    with FreezableProxy(*redis_target(redis_url)) as proxy:
        env = server_env(pg_url, via(proxy, redis_url))
        with serving(tmp_path, env, env) as (a, b):
            async with clients(a, b) as (on_a, on_b):
                session_id = await new_session(on_b, phone(10))
                await eventually_async(lambda: ready(on_a), NEVER_S, "A ready")
                async with page(a, session_id) as p:
                    before: list[float] = []
                    await p.until(await timed_call(on_b, session_id, before), LIVE_S)

                    proxy.hold()  # Redis answers nothing, and says nothing about it
                    during: list[float] = []
                    for _ in range(6):
                        last = await timed_call(on_b, session_id, during)
                    # A reply that waited for Redis would take at least its timeout, or forever.
                    assert max(during) < REDIS_TIMEOUT_S, during
                    await eventually_async(
                        lambda: bus_unavailable(on_b), NEVER_S, "/readyz says the bus is away"
                    )
                    await p.until(last)  # from the log, while Redis is still frozen
                    assert proxy.held_bytes > 0  # (it really was: messages are stuck in it)
                    for server in (a, b):  # frozen until each has noticed (DEAD_S, on its own)
                        await eventually_async(
                            lambda s=server: _noticed_the_loss(s), NEVER_S, "subscription lost"
                        )

                    proxy.release()
                    released = time.monotonic()
                    for http in (on_a, on_b):
                        await eventually_async(lambda h=http: ready(h), NEVER_S, "ready again")
                    after: list[float] = []
                    await p.until(await timed_call(on_b, session_id, after), LIVE_S)
                    recovered = time.monotonic() - released
                    await assert_page_is_the_log(p, on_b, session_id)
        for server in (a, b):  # each noticed its subscription die, and made it again
            assert "lost (no answer" in server.log() and "restored after" in server.log()
        print(
            f"measured: frozen Redis: slowest call before {max(before):.3f} s, during "
            f"{max(during):.3f} s, after {max(after):.3f} s; 0 failed; ready and live "
            f"{recovered:.1f} s after release"
        )


async def test_a_half_open_subscription_is_noticed_and_live_events_come_back(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    with FreezableProxy(*redis_target(redis_url)) as proxy:
        env_a = server_env(pg_url, via(proxy, redis_url))
        with serving(tmp_path, env_a, server_env(pg_url, redis_url)) as (a, b):
            async with clients(a, b) as (on_a, on_b):
                session_id = await new_session(on_b, phone(11))
                await eventually_async(lambda: ready(on_a), NEVER_S, "A ready")
                async with page(a, session_id) as p:
                    answers: list[float] = []
                    await p.until(await timed_call(on_b, session_id, answers), LIVE_S)
                    proxy.freeze()  # A's links to Redis go silent; nobody closes them
                    frozen = time.monotonic()
                    last = await timed_call(on_b, session_id, answers)  # its news is lost to A
                    await eventually(
                        lambda: "restored" in a.log(), NEVER_S, "A noticed and resubscribed"
                    )
                    detected = time.monotonic() - frozen
                    await p.until(last)  # read from the log when the subscription came back
                    await p.until(await timed_call(on_b, session_id, answers), LIVE_S)  # live
                    await assert_page_is_the_log(p, on_b, session_id)
        assert "redis subscription" in a.log() and "lost" in a.log()
        print(
            f"measured: half-open subscriber: noticed and resubscribed in {detected:.1f} s; "
            f"slowest call {max(answers):.3f} s; 0 failed"
        )


async def test_junk_and_forgeries_on_the_channel_never_reach_the_page(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = server_env(pg_url, redis_url)
    channel = default_prefix(pg_url)  # + session id: the deployment's own channel
    with serving(tmp_path, env, env) as (a, b):
        async with clients(a, b) as (on_a, on_b):
            session_id = await new_session(on_b, phone(12))
            await eventually_async(lambda: ready(on_a), NEVER_S, "A ready")
            raw = aioredis.from_url(redis_url)
            try:
                async with page(a, session_id) as p:
                    answers: list[float] = []
                    await p.until(await timed_call(on_b, session_id, answers), LIVE_S)
                    forged_event = {  # what the old wire format carried: a whole event
                        "session_id": session_id,
                        "id": 1_000_000,
                        "type": "tool_call",
                        "payload": {
                            "id": "forged",
                            "name": "book_appointment",
                            "status": "completed",
                            "detail": "Booked for Mallory (FORGED).",
                            "timestamp": "2027-01-01T10:00:00+00:00",
                        },
                        "created_at": "2027-01-01T10:00:00+00:00",
                        "published_at": time.time(),
                    }
                    for message in (
                        b"\xffnot json",
                        json.dumps(forged_event),
                        json.dumps({"id": 2_000_000, "published_at": time.time()}),
                        json.dumps({"id": "many", "published_at": time.time()}),
                    ):
                        await raw.publish(channel + session_id, message)
                    for _ in range(3):  # real events after the forged high ids, live
                        await p.until(await timed_call(on_b, session_id, answers), LIVE_S)
                    await assert_page_is_the_log(p, on_b, session_id)
                    assert "FORGED" not in json.dumps(p.events)
                    assert max(p.ids()) < 1_000_000
            finally:
                await raw.aclose()
    assert "skipped a malformed message on redis: not JSON" in a.log()


async def test_another_deployment_on_the_same_redis_is_never_heard(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'other.db'}"
    mine, theirs = default_prefix(pg_url), default_prefix(sqlite_url)
    assert mine != theirs
    with serving(tmp_path, server_env(pg_url, redis_url), server_env(sqlite_url, redis_url)) as (
        x,
        y,
    ):
        async with clients(x, y) as (on_x, on_y):
            for http in (on_x, on_y):
                await eventually_async(lambda h=http: ready(h), NEVER_S, "ready")
            raw = aioredis.from_url(redis_url)
            listener = raw.pubsub()
            try:
                await listener.psubscribe("voicebook:*")
                session_id = await new_session(on_x, phone(13))
                channels: set[str] = set()

                async def hear() -> bool:
                    message = await listener.get_message(timeout=0.5)
                    if message and message["type"] == "pmessage":
                        channels.add(message["channel"].decode())
                    return any(c.startswith(mine) for c in channels)

                await eventually_async(hear, NEVER_S, "X publishes under its prefix", every=0)
                assert all(c == mine + session_id for c in channels), channels
                # One connection publishes both, so Redis delivers them in this order: had Y
                # heard X's message, its log would show the first reason (the throttle keeps
                # the second one quiet).
                await raw.publish(mine + session_id, "[1]")
                await raw.publish(theirs + session_id, "junk")
                await eventually(lambda: "not JSON" in y.log(), NEVER_S, "Y heard its own")
                assert "not a JSON object" not in y.log()
                await eventually(lambda: "not a JSON object" in x.log(), NEVER_S, "X its own")
            finally:
                await listener.aclose()
                await raw.aclose()
