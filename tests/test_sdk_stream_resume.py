"""The event stream's own resume budget, and keys or URLs no HTTP request can carry (issue 13).

The servers are real `voicebook serve` processes; an outage is the server stopped and a second one
started later on the same port over the same SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from servers import free_port
from test_sdk_retries import close, consume, make_client, maybe, server_at, server_env, until
from voicebook import errors, models
from voicebook.sdk import AsyncClient, Client, RetryPolicy, endpoints
from voicebook.sdk.protocol import DEFAULT_RESUME_FOR_S, EventCursor, Wire, stream_policy
from voicebook.sdk.retry import Budget

SHORT = RetryPolicy(max_attempts=3, max_total_s=0.5, base_delay_s=0.05, max_delay_s=0.1)
"""A request budget that a server restart easily outlasts."""


def make(kind: str, *args: Any, **kwargs: Any) -> Client | AsyncClient:
    return (Client if kind == "sync" else AsyncClient)(*args, **kwargs)


# --- what cannot go into a request: a typed error when the client is made ---------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("key", ["…", "sk-caf\u00e9", "abc\x00def", "ab\tc", "a\u2028b"])
def test_a_key_no_header_can_carry_is_a_typed_error_naming_the_fix(kind: str, key: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        make(kind, "http://127.0.0.1:9", api_key=key)
    error = refused.value
    assert error.code == "invalid_api_key"
    assert "VOICEBOOK_API_KEY" in error.message and "api_key=" in error.message
    assert not isinstance(error.__context__, UnicodeEncodeError)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_placeholder_key_from_the_environment_is_refused_too(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOOK_API_KEY", "…")
    with pytest.raises(errors.InvalidInput, match="VOICEBOOK_API_KEY"):
        make(kind, "http://127.0.0.1:9")


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("url", ["http://exa…mple.com", "http://", "http://a\x01b:8000"])
def test_a_url_no_request_can_go_to_is_a_typed_error_naming_the_fix(kind: str, url: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        make(kind, url, api_key="k")
    assert refused.value.code == "invalid_url"
    assert "VOICEBOOK_URL" in refused.value.message


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_header_no_request_can_carry_is_a_typed_error(kind: str) -> None:
    with pytest.raises(errors.InvalidInput, match="headers="):
        make(kind, "http://127.0.0.1:9", api_key="k", headers={"X-Note": "caf\u00e9"})


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_printable_key_and_a_non_ascii_path_still_work(kind: str) -> None:
    vb = make(kind, "http://127.0.0.1:9/caf\u00e9", api_key="  sk-live_AZ09.~+/=  ")
    assert vb._wire.request(endpoints.health()).headers["authorization"] == (
        "Bearer sk-live_AZ09.~+/="
    )


# --- the stream's own resume budget (pure) -----------------------------------------------------


def test_the_stream_budget_is_its_own_not_the_request_retry_policy() -> None:
    wire = Wire("http://127.0.0.1:9", "k", retry=SHORT)
    cursor = EventCursor(wire, "s", None)
    assert cursor.policy.max_total_s == DEFAULT_RESUME_FOR_S >= 120
    assert cursor.policy.max_attempts > 10_000
    assert EventCursor(wire, "s", None, resume_for=7).policy.max_total_s == 7
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="resume_for"):
            stream_policy(bad)


def test_the_stream_backs_off_exponentially_with_jitter_up_to_a_cap() -> None:
    policy = stream_policy(300)
    now = [0.0]
    budget = Budget(policy, clock=lambda: now[0], rand=lambda: 0.0)
    waits = []
    for _ in range(8):
        budget.attempt()
        wait = budget.next_wait()
        assert wait is not None
        waits.append(wait)
        now[0] += wait
    assert waits == [0.25, 0.5, 1, 2, 4, 5, 5, 5]
    jittered = Budget(policy, rand=lambda: 1.0)
    jittered.attempt()
    assert jittered.next_wait() == 0.125  # half of the wait is random


# --- real servers ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_event_stream_outlasts_the_request_retry_budget(kind: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path / "x.db")
    vb = make_client(kind, f"http://127.0.0.1:{port}", SHORT, lambda r: None)
    seen: list[models.Event] = []
    async with server_at(env, tmp_path, port):
        sid = (await maybe(vb.start_session())).session_id
        await maybe(vb.identify_user(sid, phone="415 555 0124"))
        stream = vb.stream_events(sid, resume_for=120)
        consumer = asyncio.ensure_future(consume(stream, seen))
        await until(lambda: len(seen) >= 2)  # connected, identify_user
    # The server stays away while a whole request retry budget runs out...
    with pytest.raises(errors.ConnectionFailed) as request_gave_up:
        await maybe(vb.get_session(sid))
    assert request_gave_up.value.attempts == SHORT.max_attempts
    with pytest.raises(errors.ConnectionFailed):
        await maybe(vb.get_session(sid))  # ...twice over
    assert not consumer.done()  # the stream is still resuming
    async with server_at(env, tmp_path, port):
        slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
        await maybe(vb.book_appointment(sid, slot_id=slot.slot_id))
        await maybe(vb.end_conversation(sid))
        await asyncio.wait_for(consumer, 60)
        log = await maybe(vb.session_events(sid))
    assert [e.id for e in seen] == [e.id for e in log]  # every event, in order, once
    assert seen[-1].type == "session_closed"
    assert stream.reconnects >= 1
    await close(vb)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_short_resume_for_gives_up_with_connection_failed(
    kind: str, tmp_path: Path
) -> None:
    port = free_port()
    env = server_env(tmp_path / "x.db")
    patient = RetryPolicy(max_attempts=10_000, max_total_s=600, base_delay_s=0.05, max_delay_s=1)
    vb = make_client(kind, f"http://127.0.0.1:{port}", patient, lambda r: None)
    seen: list[models.Event] = []
    async with server_at(env, tmp_path, port):
        sid = (await maybe(vb.start_session())).session_id
        stream = vb.stream_events(sid, resume_for=1.0)
        consumer = asyncio.ensure_future(consume(stream, seen))
        await until(lambda: len(seen) >= 1)  # connected
    # The server does not come back: the stream gives up on its own budget, not the client's.
    with pytest.raises(errors.ConnectionFailed) as gave_up:
        await asyncio.wait_for(consumer, 60)
    error = gave_up.value
    assert error.url == f"http://127.0.0.1:{port}"
    assert f"after={seen[-1].id}" in error.message
    assert "resume_for=1" in error.message
    assert error.attempts >= 2
    assert stream.last_id == seen[-1].id
    await close(vb)


def test_the_cli_refuses_a_placeholder_key_with_the_same_sentence(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VOICEBOOK_API_KEY": "…"}
    url = "http://127.0.0.1:9"
    done = subprocess.run(
        [sys.executable, "-m", "voicebook", "tool", "fetch_slots", "--session", "x", "--url", url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "VOICEBOOK_API_KEY" in done.stderr and "Traceback" not in done.stderr
