"""Retries: the pure backoff, and real servers that go away, come back, or say "slow down".

The servers are real `voicebook serve` processes; a restart is a second server on the same port
over the same SQLite file. Nothing stands in for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server, free_port, running_server
from voicebook import errors, models
from voicebook.sdk import AsyncClient, AsyncEventStream, Client, EventStream, RetryPolicy
from voicebook.sdk import endpoints as ep
from voicebook.sdk.protocol import retryable
from voicebook.sdk.retry import Budget, backoff_delay, parse_retry_after

API_KEY = "k"
PATIENT = RetryPolicy(max_attempts=500, max_total_s=60, base_delay_s=0.05, max_delay_s=0.3)
"""A budget that outlasts a server restart (a couple of seconds)."""


def server_env(db: Path, **extra: str) -> dict[str, str]:
    return {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{db}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
        **extra,
    }


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@contextlib.asynccontextmanager
async def server_at(env: dict[str, str], tmp_path: Path, port: int) -> AsyncIterator[Server]:
    """`running_server` started and stopped on a thread, so the loop's tasks keep running."""
    stack = contextlib.ExitStack()
    server = await asyncio.to_thread(stack.enter_context, running_server(env, tmp_path, port=port))
    try:
        yield server
    finally:
        await asyncio.to_thread(stack.close)


def make_client(
    kind: str, url: str, retry: RetryPolicy, on_request: Callable[[httpx.Request], None]
) -> Any:
    """A client of `kind` whose every attempt is reported to `on_request`."""
    if kind == "sync":
        return Client(
            url,
            API_KEY,
            retry=retry,
            http_client=httpx.Client(timeout=5, event_hooks={"request": [on_request]}),
        )

    async def hook(request: httpx.Request) -> None:
        on_request(request)

    return AsyncClient(
        url,
        API_KEY,
        retry=retry,
        http_client=httpx.AsyncClient(timeout=5, event_hooks={"request": [hook]}),
    )


def in_background(vb: Any, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Run a client call concurrently: a task for the async client, a thread for the sync one."""
    bound = getattr(vb, method)
    if isinstance(vb, AsyncClient):
        return asyncio.ensure_future(bound(*args, **kwargs))
    return asyncio.ensure_future(asyncio.to_thread(bound, *args, **kwargs))


async def close(vb: Any) -> None:
    await maybe(vb.aclose() if isinstance(vb, AsyncClient) else vb.close())
    await maybe(vb._http.aclose() if isinstance(vb, AsyncClient) else vb._http.close())


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# --- the pure backoff ---------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4, jitter=0)
    assert [backoff_delay(policy, n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


def test_jitter_draws_within_its_fraction() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=100, jitter=0.5)
    assert backoff_delay(policy, 3, rand=lambda: 0.0) == 4
    assert backoff_delay(policy, 3, rand=lambda: 1.0) == 2
    full = RetryPolicy(base_delay_s=1, max_delay_s=100, jitter=1)
    assert backoff_delay(full, 3, rand=lambda: 1.0) == 0
    draws = {backoff_delay(policy, 2) for _ in range(50)}
    assert all(1 <= d <= 2 for d in draws)
    assert len(draws) > 1


def test_retry_after_is_a_floor_for_the_wait() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8, jitter=0.5)
    assert backoff_delay(policy, 1, retry_after=7, rand=lambda: 0.3) == 7
    assert backoff_delay(policy, 5, retry_after=0.1, rand=lambda: 0.0) == 8


def test_budget_is_bounded_in_attempts_and_total_time() -> None:
    now = [0.0]
    budget = Budget(RetryPolicy(max_attempts=3, max_total_s=10, jitter=0), clock=lambda: now[0])
    budget.attempt()
    assert budget.next_wait() == 0.5
    budget.attempt()
    assert budget.next_wait() == 1
    budget.attempt()
    assert budget.next_wait() is None  # three attempts made

    timed = Budget(RetryPolicy(max_attempts=99, max_total_s=10, jitter=0), clock=lambda: now[0])
    timed.attempt()
    assert timed.next_wait(retry_after=9) == 9
    assert timed.next_wait(retry_after=11) is None  # Retry-After beyond the budget: give up now
    now[0] = 9.8
    assert timed.next_wait() is None  # the wait would end after max_total_s
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_retry_after_header_forms() -> None:
    now = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("60") == 60
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("Mon, 01 Mar 2027 12:00:30 GMT", now=now) == 30
    assert (
        parse_retry_after((now - timedelta(minutes=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now)
        == 0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def test_what_is_retried() -> None:
    start, book = ep.start_session(), ep.book_appointment("s", slot_id="x")
    refused = errors.ConnectionFailed("refused", url="u")
    lost = errors.ConnectionFailed("reset after sending", url="u")
    lost.request_sent = True
    limited = errors.RateLimited(status=429, retry_after=3)
    down = errors.StoreUnavailable(status=503)
    gateway = errors.ServiceUnavailable(status=502)
    assert retryable(start, refused) and retryable(book, refused)
    assert retryable(book, lost)  # the idempotency key makes a repeat harmless
    assert not retryable(start, lost)  # it may have started a session already
    assert retryable(start, limited) and retryable(start, down)
    assert retryable(book, gateway) and not retryable(start, gateway)
    assert not retryable(book, errors.LiveKitNotConfigured(status=503))
    assert not retryable(book, errors.NotFound(status=404))
    assert not retryable(book, errors.SlotTaken(status=409))
    key = book.idempotency_key
    assert key and key != ep.book_appointment("s", slot_id="x").idempotency_key  # one per call
    assert ep.book_appointment("s", slot_id="x", idempotency_key="llm-1").idempotency_key == "llm-1"


# --- unreachable servers --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_unreachable_server_fails_after_its_attempts_naming_the_url(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    attempts: list[str] = []
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
    vb = make_client(kind, url, policy, lambda r: attempts.append(r.headers["Idempotency-Key"]))
    with pytest.raises(errors.ConnectionFailed) as failed:
        await maybe(vb.identify_user("s" * 22, phone="415 555 0123"))
    error = failed.value
    assert url in str(error) and error.url == url
    assert (error.attempts, error.request_sent, error.status) == (3, False, None)
    assert len(attempts) == 3 and len(set(attempts)) == 1  # one key for the logical call
    assert isinstance(error.__cause__, httpx.ConnectError)
    await close(vb)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_total_retry_time_is_bounded(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(max_attempts=10_000, max_total_s=1.0, base_delay_s=0.05, max_delay_s=0.2)
    vb = make_client(kind, url, policy, lambda r: None)
    started = time.monotonic()
    with pytest.raises(errors.ConnectionFailed) as failed:
        await maybe(vb.health())
    assert 0.6 < time.monotonic() - started < 2.5
    assert 3 < failed.value.attempts < 10_000
    await close(vb)


# --- a server restart during a call ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_booking_made_while_the_server_is_down_lands_once(kind: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "x.db")
    bookings: list[str] = []

    def on_request(request: httpx.Request) -> None:
        if request.url.path == "/tools/book_appointment":
            bookings.append(request.headers["Idempotency-Key"])

    vb = make_client(kind, f"http://127.0.0.1:{port}", PATIENT, on_request)
    async with server_at(env, tmp_path, port):
        sid = (await maybe(vb.start_session())).session_id
        await maybe(vb.identify_user(sid, phone="415 555 0123"))
        slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]

    call = in_background(vb, "book_appointment", sid, slot_id=slot.slot_id)
    await until(lambda: len(bookings) >= 3)  # refused, and retried, while the server is down
    assert not call.done()
    async with server_at(env, tmp_path, port):
        booked = await asyncio.wait_for(call, 60)
        assert isinstance(booked, models.BookAppointmentResponse)
        assert booked.appointment.start == slot.start
        assert len(set(bookings)) == 1  # every attempt carried the same idempotency key

        mine = await maybe(vb.retrieve_appointments(sid))
        assert [a.id for a in mine.appointments] == [booked.appointment.id]
        # Had an attempt landed whose answer was lost, its retry is replayed, not booked again:
        again = await maybe(
            vb.book_appointment(sid, slot_id=slot.slot_id, idempotency_key=bookings[0])
        )
        assert again.appointment.id == booked.appointment.id
        tools = await maybe(vb.session_tools(sid))
        assert [t.name for t in tools if t.status == "completed"].count("book_appointment") == 1
    await close(vb)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_event_stream_resumes_across_a_server_restart(kind: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "x.db")
    vb = make_client(kind, f"http://127.0.0.1:{port}", PATIENT, lambda r: None)
    seen: list[models.Event] = []
    async with server_at(env, tmp_path, port):
        sid = (await maybe(vb.start_session())).session_id
        await maybe(vb.identify_user(sid, phone="415 555 0124"))
        stream = vb.stream_events(sid)
        consumer = asyncio.ensure_future(consume(stream, seen))
        await until(lambda: len(seen) >= 2)  # connected, identify_user
    await asyncio.sleep(0.5)  # the stream retries against a closed port meanwhile
    assert not consumer.done()
    async with server_at(env, tmp_path, port):
        slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
        await maybe(vb.book_appointment(sid, slot_id=slot.slot_id))
        await maybe(vb.end_conversation(sid))
        await asyncio.wait_for(consumer, 60)
        log = await maybe(vb.session_events(sid))
    ids = [e.id for e in seen]
    assert ids == [e.id for e in log]  # all of them, in order, none twice
    assert seen[-1].type == "session_closed"
    assert stream.reconnects >= 1
    assert stream.last_id == log[-1].id
    await close(vb)


async def consume(stream: EventStream | AsyncEventStream, seen: list[models.Event]) -> None:
    if isinstance(stream, AsyncEventStream):
        async with stream:
            async for event in stream:
                seen.append(event)
        return

    def run() -> None:
        with stream:
            for event in stream:
                seen.append(event)

    await asyncio.to_thread(run)


# --- 429 with Retry-After, from the real rate limiter -------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_rate_limit_retry_after_is_honoured(kind: str, tmp_path: Path) -> None:
    env = server_env(tmp_path / "x.db", VOICEBOOK_SESSION_RATE_LIMIT="2")
    starts: list[float] = []
    async with server_at(env, tmp_path, free_port()) as server:
        short = RetryPolicy(max_attempts=5, max_total_s=5)
        vb = make_client(kind, server.url, short, lambda r: starts.append(time.monotonic()))
        for _ in range(2):
            await maybe(vb.start_session())

        # Retry-After (about 60 s, the limiter's window) does not fit in 5 s: fail at once.
        began = time.monotonic()
        with pytest.raises(errors.RateLimited) as limited:
            await maybe(vb.start_session())
        error = limited.value
        assert time.monotonic() - began < 2
        assert (error.code, error.status, error.attempts) == ("rate_limited", 429, 1)
        assert error.retry_after is not None and 5 < error.retry_after <= 60
        assert error.request_id and error.message

        # With room in the budget, each retry waits at least what Retry-After asks. (The sleep is
        # recorded rather than slept, so the test does not take minutes.)
        waits: list[float] = []
        roomy = make_client(
            kind, server.url, RetryPolicy(max_attempts=3, max_total_s=600), lambda r: None
        )
        if kind == "sync":
            roomy._sleep = waits.append
        else:

            async def record(seconds: float) -> None:
                waits.append(seconds)

            roomy._sleep = record
        with pytest.raises(errors.RateLimited) as again:
            await maybe(roomy.start_session())
        assert again.value.attempts == 3
        assert len(waits) == 2
        assert all(w >= 50 for w in waits), waits
        assert all(w >= (again.value.retry_after or 0) for w in waits)
        await close(vb)
        await close(roomy)
