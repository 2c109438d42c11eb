"""LiveKit tokens for a session (DESIGN §3, issue 9): one identity per session, a bounded number of
mints, a lifetime no longer than the session can live, none after the end.

Units on the service (SQLite and Postgres, concurrent claims included), then the public surface:
`POST /livekit/token` on a real `voicebook serve` process per backend, hit by many concurrent
requests, with every token checked by LiveKit's own TokenVerifier.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from livekit import api

from backend_servers import BACKENDS, database_on
from servers import Server, running_server
from voicebook.config import Settings
from voicebook.scheduling.errors import (
    IdentityMismatch,
    SessionEnded,
    SessionNotFound,
    TooManyTokens,
)
from voicebook.scheduling.service import SchedulingService
from voicebook.server.livekit import mint_token, session_token_ttl

LIVEKIT_URL = "wss://voicebook-limits.livekit.cloud"
LIVEKIT_KEY = "APIlimitstest"
LIVEKIT_SECRET = "limits-secret-0123456789abcdef0123456789abcdef"
AGENT = "limits-agent"
MINTS = 5
IDLE_MINUTES = 10
TTL_MINUTES = 60  # longer than the idle time: the idle time must win
GENERATED = re.compile(r"caller-[0-9a-f]{8}")

LIVEKIT_ENV = {
    "LIVEKIT_URL": LIVEKIT_URL,
    "LIVEKIT_API_KEY": LIVEKIT_KEY,
    "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
    "LIVEKIT_AGENT_NAME": AGENT,
}
BASE_ENV = {
    "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
    "VOICEBOOK_TOKEN_MINTS_PER_SESSION": str(MINTS),
    "VOICEBOOK_SESSION_IDLE_MINUTES": str(IDLE_MINUTES),
    "VOICEBOOK_TOKEN_TTL_MINUTES": str(TTL_MINUTES),
}


def verify(token: str) -> api.access_token.Claims:
    return api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(token)


def lifetime(token: str) -> int:
    """exp − nbf of the JWT, in seconds."""
    claims = jwt.decode(token, LIVEKIT_SECRET, algorithms=["HS256"], issuer=LIVEKIT_KEY)
    return claims["exp"] - claims["nbf"]


# --- the service: claim_livekit_identity -------------------------------------------------------


async def test_the_first_claim_fixes_the_given_identity(service: SchedulingService) -> None:
    session = await service.start_session()

    assert await service.claim_livekit_identity(session.id, "page-alice", MINTS) == "page-alice"
    # Without an identity a later request gets the fixed one; the same one is fine too.
    assert await service.claim_livekit_identity(session.id, None, MINTS) == "page-alice"
    assert await service.claim_livekit_identity(session.id, "page-alice", MINTS) == "page-alice"
    with pytest.raises(IdentityMismatch) as refused:
        await service.claim_livekit_identity(session.id, "page-mallory", MINTS)

    error = refused.value
    assert (error.code, error.status) == ("identity_mismatch", 409)
    assert error.message.endswith(".") and " " in error.message
    stored, _ = await service.get_session(session.id)
    assert stored.livekit_identity == "page-alice"
    assert stored.token_mints == 3  # the refused request did not count


async def test_a_generated_identity_is_fixed_too(service: SchedulingService) -> None:
    session = await service.start_session()

    first = await service.claim_livekit_identity(session.id, None, MINTS)
    assert GENERATED.fullmatch(first)
    assert await service.claim_livekit_identity(session.id, None, MINTS) == first
    assert await service.claim_livekit_identity(session.id, first, MINTS) == first
    with pytest.raises(IdentityMismatch):
        await service.claim_livekit_identity(session.id, "someone-else", MINTS)
    other = await service.start_session()  # another session has its own identity
    assert await service.claim_livekit_identity(other.id, None, MINTS) != first


async def test_mints_are_bounded_per_session(service: SchedulingService) -> None:
    session = await service.start_session()
    identity = await service.claim_livekit_identity(session.id, None, 3)
    for _ in range(2):
        await service.claim_livekit_identity(session.id, identity, 3)

    for asked in (None, identity):
        with pytest.raises(TooManyTokens) as refused:
            await service.claim_livekit_identity(session.id, asked, 3)
        assert (refused.value.code, refused.value.status) == ("too_many_tokens", 429)
        assert refused.value.message.endswith(".")
    stored, _ = await service.get_session(session.id)
    assert stored.token_mints == 3
    # Another session starts from zero.
    fresh = await service.start_session()
    assert await service.claim_livekit_identity(fresh.id, None, 3)


async def test_no_claim_after_the_end_or_for_an_unknown_session(
    service: SchedulingService,
) -> None:
    session = await service.start_session()
    identity = await service.claim_livekit_identity(session.id, None, MINTS)
    await service.end_session(session.id, reason="page")

    for asked in (None, identity):
        with pytest.raises(SessionEnded):
            await service.claim_livekit_identity(session.id, asked, MINTS)
    with pytest.raises(SessionNotFound):
        await service.claim_livekit_identity("no-such-session-0000000000", None, MINTS)
    stored, _ = await service.get_session(session.id)
    assert stored.token_mints == 1


async def outcomes(calls: list[Any]) -> list[Any]:
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_concurrent_claims_with_different_identities_one_wins(
    service: SchedulingService,
) -> None:
    session = await service.start_session()
    asked = [f"page-{n}" for n in range(12)]

    results = await outcomes(
        [service.claim_livekit_identity(session.id, who, 100) for who in asked]
    )

    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, IdentityMismatch) for r in results if not isinstance(r, str))
    stored, _ = await service.get_session(session.id)
    assert (stored.livekit_identity, stored.token_mints) == (winners[0], 1)


async def test_concurrent_claims_never_pass_the_limit(service: SchedulingService) -> None:
    session = await service.start_session()

    results = await outcomes(
        [service.claim_livekit_identity(session.id, None, MINTS) for _ in range(20)]
    )

    granted = [r for r in results if isinstance(r, str)]
    assert len(granted) == MINTS, results
    assert len(set(granted)) == 1  # all for the one identity the first fixed
    assert sum(isinstance(r, TooManyTokens) for r in results) == 20 - MINTS
    stored, _ = await service.get_session(session.id)
    assert stored.token_mints == MINTS


# --- the lifetime ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "idle", "expected"),
    [(60, 15, 15), (10, 15, 10), (15, 15, 15), (1, 0.5, 0.5), (24 * 60, 30, 30)],
)
def test_a_session_token_lives_no_longer_than_an_idle_session(
    ttl: int, idle: float, expected: float
) -> None:
    settings = Settings(token_ttl_minutes=ttl, session_idle_minutes=idle)
    assert session_token_ttl(settings) == timedelta(minutes=expected)


def test_mint_token_takes_the_lifetime_it_is_given() -> None:
    settings = Settings(
        livekit_url=LIVEKIT_URL, livekit_api_key=LIVEKIT_KEY, livekit_api_secret=LIVEKIT_SECRET
    )
    minted = mint_token(settings, "room-1", identity="x", ttl=timedelta(minutes=7))
    verify(minted.token)
    assert lifetime(minted.token) == pytest.approx(7 * 60, abs=1)


# --- HTTP against a real server ----------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str, Path]]:
    """A configured server per backend, its database URL and its directory (shared by the tests
    of this module: each test has its own sessions)."""
    directory = tmp_path_factory.mktemp(f"tokens-{request.param}")
    with database_on(request.param, request, directory) as url:
        env = {**BASE_ENV, **LIVEKIT_ENV, "VOICEBOOK_DATABASE_URL": url}
        with running_server(env, directory) as running:
            yield running, url, directory


@pytest.fixture
def server(backend: tuple[Server, str, Path]) -> Server:
    return backend[0]


@pytest.fixture
async def client(server: Server) -> Any:
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        yield http


async def start(client: httpx.AsyncClient) -> str:
    answer = await client.post("/session/start")
    assert answer.status_code == 200, answer.text
    return answer.json()["session_id"]


async def mint(client: httpx.AsyncClient, session_id: str, **extra: Any) -> httpx.Response:
    return await client.post("/livekit/token", json={"session_id": session_id, **extra})


def error_of(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"].endswith(".") and len(error["message"].split()) > 4
    return error


def stored_mints(url: str, session_id: str) -> tuple[str | None, int]:
    """(livekit_identity, token_mints) of the session, read from the database itself."""
    sql = "SELECT livekit_identity, token_mints FROM sessions WHERE id = "
    if url.startswith("sqlite:"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            row = conn.execute(sql + "?", (session_id,)).fetchone()
    else:
        with psycopg.connect(url) as conn:
            row = conn.execute(sql + "%s", (session_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_http_the_first_token_fixes_the_identity(client: httpx.AsyncClient) -> None:
    session_id = await start(client)

    first = await mint(client, session_id, identity="page-ann", name="Ann")
    assert first.status_code == 200, first.text
    assert first.json()["identity"] == "page-ann"
    again = await mint(client, session_id)
    assert again.status_code == 200, again.text
    assert again.json()["identity"] == "page-ann"
    claims = verify(again.json()["token"])
    assert claims.identity == "page-ann"
    assert claims.video is not None and claims.video.room == session_id

    refused = await mint(client, session_id, identity="page-eve")
    error_of(refused, 409, "identity_mismatch")


async def test_http_a_generated_identity_is_kept(client: httpx.AsyncClient) -> None:
    session_id = await start(client)

    first = (await mint(client, session_id)).json()
    assert GENERATED.fullmatch(first["identity"])
    second = (await mint(client, session_id)).json()
    assert second["identity"] == first["identity"]
    assert verify(second["token"]).identity == first["identity"]
    error_of(await mint(client, session_id, identity="caller-00000000"), 409, "identity_mismatch")


async def test_http_concurrent_mints_stop_exactly_at_the_limit(
    backend: tuple[Server, str, Path], client: httpx.AsyncClient
) -> None:
    _, url, _ = backend
    session_id = await start(client)

    answers = await asyncio.gather(*[mint(client, session_id) for _ in range(20)])

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: MINTS, 429: 20 - MINTS}, [a.text for a in answers]
    granted = [a.json() for a in answers if a.status_code == 200]
    identities = {g["identity"] for g in granted}
    assert len(identities) == 1
    for token in granted:
        assert verify(token["token"]).identity in identities
    for answer in answers:
        if answer.status_code == 429:
            error_of(answer, 429, "too_many_tokens")
    error_of(await mint(client, session_id), 429, "too_many_tokens")
    assert stored_mints(url, session_id) == (identities.pop(), MINTS)


async def test_http_concurrent_identities_exactly_one_wins(
    backend: tuple[Server, str, Path], client: httpx.AsyncClient
) -> None:
    _, url, _ = backend
    session_id = await start(client)
    asked = [f"tab-{n}" for n in range(MINTS + 3)]

    answers = await asyncio.gather(*[mint(client, session_id, identity=who) for who in asked])

    won = [a.json()["identity"] for a in answers if a.status_code == 200]
    assert len(won) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status_code != 200:
            error_of(answer, 409, "identity_mismatch")
    assert stored_mints(url, session_id) == (won[0], 1)


async def test_http_token_lives_no_longer_than_an_idle_session(client: httpx.AsyncClient) -> None:
    session_id = await start(client)

    token = (await mint(client, session_id)).json()["token"]

    verify(token)
    assert lifetime(token) == IDLE_MINUTES * 60  # not TTL_MINUTES: the session would be gone


async def test_http_no_token_after_the_end(client: httpx.AsyncClient) -> None:
    session_id = await start(client)
    assert (await mint(client, session_id)).status_code == 200
    assert (await client.post(f"/session/{session_id}/end")).status_code == 200

    for extra in ({}, {"identity": "late"}):
        error_of(await mint(client, session_id, **extra), 409, "session_ended")


async def test_http_refusals_for_missing_livekit_config_burn_no_mints(
    backend: tuple[Server, str, Path], client: httpx.AsyncClient
) -> None:
    _, url, directory = backend
    session_id = await start(client)
    unconfigured_env = {**BASE_ENV, "VOICEBOOK_DATABASE_URL": url}  # no LIVEKIT_*
    with running_server(unconfigured_env, directory) as unconfigured:
        async with httpx.AsyncClient(base_url=unconfigured.url, timeout=30) as other:
            for n in range(MINTS + 2):
                extra = {"identity": f"x-{n}"} if n % 2 else {}
                answer = await other.post(
                    "/livekit/token", json={"session_id": session_id, **extra}
                )
                error = error_of(answer, 503, "livekit_not_configured")
                assert error["missing"] == ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]
    assert stored_mints(url, session_id) == (None, 0)

    # The configured server still grants the session all its mints, for any first identity.
    answers = [await mint(client, session_id, identity="page-zoe") for _ in range(MINTS)]
    assert [a.status_code for a in answers] == [200] * MINTS
    error_of(await mint(client, session_id), 429, "too_many_tokens")
