"""The server's edges against a real `voicebook serve`: idempotency, auth, unknown sessions, rate
and size limits, CORS, missing LiveKit config, operations endpoints, the error shape everywhere,
and the refusal to listen publicly without a service key (DESIGN §3)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from servers import Server, clean_env, free_port, running_server
from voicebook import __version__

API_KEY = "edge-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ORIGIN = "https://app.example"
MAX_BODY = 2048
UNKNOWN_SESSION = "AAAAAAAAAAAAAAAAAAAAAA"  # well formed, never issued
BAD_SESSION = "nope"  # cannot be a session id at all
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
SERVICE_ENDPOINTS = [
    *(
        f"/tools/{name}"
        for name in (
            "identify_user",
            "fetch_slots",
            "book_appointment",
            "retrieve_appointments",
            "cancel_appointment",
            "modify_appointment",
            "end_conversation",
        )
    ),
    "/agent/report",
]
BASE_ENV = {
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
}

# Every error answer the tests below receive, for the module-wide shape and "no 5xx" checks.
SEEN_ERRORS: list[tuple[str, httpx.Response]] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Service key on, small body limit, one CORS origin, no LiveKit configuration."""
    directory = tmp_path_factory.mktemp("edges")
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_MAX_BODY_BYTES": str(MAX_BODY),
        "VOICEBOOK_CORS_ORIGINS": ORIGIN,
    }
    with running_server(env, directory) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


# --- helpers -----------------------------------------------------------------------------------


def expect_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the DESIGN §3 error shape and status; remember the answer for the module audit."""
    SEEN_ERRORS.append((f"{response.request.method} {response.request.url.path}", response))
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert SNAKE.fullmatch(error["code"]), error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert error["message"].rstrip()[-1] in ".?", error
    if code is not None:
        assert error["code"] == code, error
    return error


def new_key() -> str:
    return f"call_{uuid.uuid4().hex[:16]}"


def tool(
    http: httpx.Client, tool_name: str, session_id: str, key: str | None = None, /, **args: Any
) -> httpx.Response:
    return http.post(
        f"/tools/{tool_name}",
        json={"session_id": session_id, **args},
        headers={**AUTH, "Idempotency-Key": key or new_key()},
    )


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def start(http: httpx.Client) -> str:
    return ok(http.post("/session/start"))["session_id"]


def free_slot(http: httpx.Client, session_id: str, skip: int = 0) -> dict[str, Any]:
    slots = ok(tool(http, "fetch_slots", session_id, limit=30))["slots"]
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    return [s for s in slots if datetime.fromisoformat(s["start"]) >= soon][skip]


def identified(http: httpx.Client, phone: str = "+1 212 555 0147") -> str:
    session_id = start(http)
    ok(tool(http, "identify_user", session_id, phone=phone))
    return session_id


def big_body(session_id: str) -> bytes:
    body = json.dumps({"session_id": session_id, "notes": "x" * 10_000}).encode()
    assert len(body) > 10_000
    return body


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for offset in range(0, len(body), size):
        yield body[offset : offset + size]


# --- idempotency -------------------------------------------------------------------------------


def test_idempotent_replay_and_conflict(http: httpx.Client) -> None:
    session_id = identified(http)
    slot, other = free_slot(http, session_id), free_slot(http, session_id, skip=1)
    key = new_key()

    first = tool(http, "book_appointment", session_id, key, slot_id=slot["slot_id"])
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    again = tool(http, "book_appointment", session_id, key, slot_id=slot["slot_id"])
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()

    conflict = tool(http, "book_appointment", session_id, key, slot_id=other["slot_id"])
    expect_error(conflict, 422, "idempotency_conflict")

    appointments = ok(tool(http, "retrieve_appointments", session_id))["appointments"]
    assert [a["id"] for a in appointments] == [first.json()["appointment"]["id"]]
    calls = ok(http.get(f"/session/{session_id}/tools"))
    assert [c["name"] for c in calls].count("book_appointment") == 1


def test_idempotent_replay_of_a_refused_call(http: httpx.Client) -> None:
    session_id = identified(http)
    key = new_key()
    first = tool(http, "book_appointment", session_id, key, start="2020-01-06T10:00:00-05:00")
    error = expect_error(first, 422, "in_past")
    again = tool(http, "book_appointment", session_id, key, start="2020-01-06T10:00:00-05:00")
    assert expect_error(again, 422, "in_past") == error
    assert again.headers["Idempotent-Replayed"] == "true"
    failed = [c for c in ok(http.get(f"/session/{session_id}/tools")) if c["status"] == "failed"]
    assert [c["id"] for c in failed] == [key]


def test_retried_malformed_call_changes_nothing(http: httpx.Client) -> None:
    session_id = identified(http)
    key = new_key()
    first = tool(http, "book_appointment", session_id, key, start="next tuesday-ish")
    error = expect_error(first, 422, "invalid_time")
    again = tool(http, "book_appointment", session_id, key, start="next tuesday-ish")
    assert expect_error(again, 422, "invalid_time") == error
    failed = [c for c in ok(http.get(f"/session/{session_id}/tools")) if c["status"] == "failed"]
    assert [c["id"] for c in failed] == [key]


def test_retried_malformed_call_is_a_replay(http: httpx.Client) -> None:
    session_id = identified(http)
    key = new_key()
    expect_error(tool(http, "book_appointment", session_id, key, start="soonish"), 422)
    again = tool(http, "book_appointment", session_id, key, start="soonish")
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = tool(http, "book_appointment", session_id, key, start="later-ish")
    expect_error(other, 422, "idempotency_conflict")


# --- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SERVICE_ENDPOINTS)
def test_service_endpoints_need_the_key(http: httpx.Client, path: str) -> None:
    session_id = identified(http)
    body = {"session_id": session_id}
    for headers in (
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": API_KEY},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {API_KEY}x"},
    ):
        answer = http.post(path, json=body, headers={**headers, "Idempotency-Key": new_key()})
        expect_error(answer, 401, "unauthorized")
    # Nothing of that reached the session.
    assert [c["name"] for c in ok(http.get(f"/session/{session_id}/tools"))] == ["identify_user"]
    # The right key gets past auth (whatever the tool then says about the bare arguments).
    answer = http.post(path, json=body, headers={**AUTH, "Idempotency-Key": new_key()})
    assert answer.status_code != 401, answer.text


def test_browser_endpoints_need_no_key(http: httpx.Client) -> None:
    session_id = start(http)
    assert http.get(f"/session/{session_id}").status_code == 200
    assert http.get(f"/session/{session_id}/tools").status_code == 200
    assert http.get(f"/session/{session_id}/events").status_code == 200
    # Not configured here, but that is the answer, not a 401.
    expect_error(http.post("/livekit/token", json={"session_id": session_id}), 503)
    assert http.post(f"/session/{session_id}/end").status_code == 200
    assert http.get("/healthz").status_code == 200  # liveness is open; readiness is not


def test_readiness_and_metrics_need_the_key(http: httpx.Client) -> None:
    for path in ("/readyz", "/metrics"):
        expect_error(http.get(path), 401, "unauthorized")
        assert http.get(path, headers=AUTH).status_code == 200, path


async def test_websocket_needs_no_key(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        started = ok(await client.post("/session/start"))
    async with websockets.connect(started["ws_url"]) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "status"


# --- unknown sessions --------------------------------------------------------------------------


@pytest.mark.parametrize("session_id", [UNKNOWN_SESSION, BAD_SESSION])
def test_unknown_session_is_404(http: httpx.Client, session_id: str) -> None:
    for answer in (
        http.get(f"/session/{session_id}"),
        http.get(f"/session/{session_id}/tools"),
        http.get(f"/session/{session_id}/events"),
        http.get(f"/session/{session_id}/events", params={"after": 3}),
        http.post(f"/session/{session_id}/end"),
        http.post("/livekit/token", json={"session_id": session_id}),
        tool(http, "fetch_slots", session_id),
        tool(http, "identify_user", session_id, phone="+1 212 555 0147"),
        http.post("/agent/report", json={"session_id": session_id}, headers=AUTH),
    ):
        expect_error(answer, 404, "not_found")


@pytest.mark.parametrize("session_id", [UNKNOWN_SESSION, BAD_SESSION])
async def test_websocket_to_unknown_session_is_refused(server: Server, session_id: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_url}/session/{session_id}/events"):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("after", ["-1", str(2**63), "x"])
async def test_websocket_with_an_impossible_after_is_refused(
    server: Server, http: httpx.Client, after: str
) -> None:
    session_id = start(http)
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{server.ws_url}/session/{session_id}/events?after={after}"):
            pass


# --- limits ------------------------------------------------------------------------------------


def test_session_start_rate_limit(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}",
        "VOICEBOOK_SESSION_RATE_LIMIT": "3",
    }
    with running_server(env, tmp_path) as limited, httpx.Client(base_url=limited.url) as client:
        for _ in range(3):
            assert client.post("/session/start").status_code == 200
        refused = client.post("/session/start")
        expect_error(refused, 429, "rate_limited")
        retry_after = refused.headers["Retry-After"]
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
        # Only starting sessions is limited.
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/tools/book_appointment", "/agent/report"])
def test_oversized_body_is_413(http: httpx.Client, path: str) -> None:
    session_id = identified(http)
    body = big_body(session_id)
    headers = {**AUTH, "Content-Type": "application/json", "Idempotency-Key": new_key()}
    declared = http.post(path, content=body, headers=headers)
    expect_error(declared, 413, "payload_too_large")
    streamed = http.post(path, content=chunks(body), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    expect_error(streamed, 413, "payload_too_large")
    # Refused before it did anything; the server is fine afterwards.
    assert [c["name"] for c in ok(http.get(f"/session/{session_id}/tools"))] == ["identify_user"]
    assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/session/start", "/livekit/token"])
def test_oversized_body_to_browser_endpoints_is_413(http: httpx.Client, path: str) -> None:
    body = big_body(UNKNOWN_SESSION)
    headers = {"Content-Type": "application/json"}
    expect_error(http.post(path, content=body, headers=headers), 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/session/start", "/livekit/token"])
def test_chunked_oversized_body_to_browser_endpoints_is_413(http: httpx.Client, path: str) -> None:
    body = big_body(UNKNOWN_SESSION)
    answer = http.post(path, content=chunks(body), headers={"Content-Type": "application/json"})
    expect_error(answer, 413, "payload_too_large")


# --- CORS --------------------------------------------------------------------------------------


def preflight(http: httpx.Client, origin: str) -> httpx.Response:
    return http.options(
        "/session/start",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cors_preflight_from_the_configured_origin(http: httpx.Client) -> None:
    answer = preflight(http, ORIGIN)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "content-type" in answer.headers["access-control-allow-headers"].lower()
    # The real request then carries the header too, and exposes the headers the page reads.
    posted = http.post("/session/start", json={}, headers={"Origin": ORIGIN})
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == ORIGIN
    exposed = posted.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed and "x-request-id" in exposed


def test_cors_preflight_from_another_origin_is_refused(http: httpx.Client) -> None:
    for origin in ("https://evil.example", "https://app.example.evil", "http://app.example"):
        answer = preflight(http, origin)
        assert answer.status_code >= 400, answer.headers
        assert "access-control-allow-origin" not in answer.headers
        posted = http.post("/session/start", json={}, headers={"Origin": origin})
        assert "access-control-allow-origin" not in posted.headers


def test_refused_preflight_is_json(http: httpx.Client) -> None:
    expect_error(preflight(http, "https://evil.example"), 400)


def test_413_is_readable_by_the_allowed_origin(http: httpx.Client) -> None:
    answer = http.post(
        "/session/start",
        content=big_body(UNKNOWN_SESSION),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )
    assert answer.status_code == 413
    assert answer.headers.get("access-control-allow-origin") == ORIGIN


# --- LiveKit not configured ---------------------------------------------------------------------


def test_livekit_token_without_configuration_is_503(http: httpx.Client) -> None:
    session_id = start(http)
    for body in ({"session_id": session_id}, {"session_id": session_id, "identity": "page-1"}):
        error = expect_error(http.post("/livekit/token", json=body), 503, "livekit_not_configured")
        for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            assert name in error["message"]
        assert error["missing"] == ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]


# --- operations --------------------------------------------------------------------------------


def test_health_ready_and_metrics(http: httpx.Client) -> None:
    assert ok(http.get("/healthz")) == {"status": "ok", "version": __version__}
    assert ok(http.get("/readyz", headers=AUTH)) == {"status": "ready", "version": __version__}
    session_id = start(http)
    ok(tool(http, "fetch_slots", session_id, limit=1))
    expect_error(tool(http, "book_appointment", session_id, slot_id="slot_x"), 409)
    metrics = http.get("/metrics", headers=AUTH)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert re.search(r'voicebook_tool_calls_total\{[^}]*tool="fetch_slots"[^}]*\} [1-9]', text)
    assert re.search(r'voicebook_tool_calls_total\{outcome="not_identified"', text)
    assert "voicebook_http_request_duration_seconds_bucket" in text
    assert re.search(r'voicebook_http_request_duration_seconds_count\{[^}]*route="/tools/', text)


def test_request_id_is_echoed(http: httpx.Client) -> None:
    answer = http.get("/healthz", headers={"X-Request-ID": "edge-req-42"})
    assert answer.headers["x-request-id"] == "edge-req-42"
    assert http.get("/healthz").headers["x-request-id"]


# --- the error shape everywhere -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/tools/identify_user", AUTH),
        ("/tools/book_appointment", AUTH),
        ("/agent/report", AUTH),
        ("/session/start", {}),
        ("/livekit/token", {}),
    ],
)
def test_malformed_json_is_422(http: httpx.Client, path: str, headers: dict[str, str]) -> None:
    for body in (b'{"session_id": ', b"{bad", b"\xff\xfe"):
        answer = http.post(
            path, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        expect_error(answer, 422, "invalid_input")


@pytest.mark.parametrize("path", ["/session/start", "/livekit/token"])
def test_malformed_json_message_names_no_bogus_field(http: httpx.Client, path: str) -> None:
    answer = http.post(path, content=b"{bad", headers={"Content-Type": "application/json"})
    error = expect_error(answer, 422, "invalid_input")
    assert not re.match(r"The \d", error["message"]), error
    assert not str(error.get("field") or "").isdigit(), error


@pytest.mark.parametrize("path", ["/session/start", "/livekit/token"])
def test_undecodable_body_to_browser_endpoints_is_422(http: httpx.Client, path: str) -> None:
    answer = http.post(path, content=b"\x80\x81", headers={"Content-Type": "application/json"})
    expect_error(answer, 422, "invalid_input")


def test_undecodable_body_to_tools_is_422(http: httpx.Client) -> None:
    answer = http.post("/tools/fetch_slots", content=b"\x80\x81", headers=AUTH)
    expect_error(answer, 422, "invalid_input")


def test_other_request_errors_are_json(http: httpx.Client) -> None:
    session_id = start(http)
    expect_error(http.post("/tools/no_such_tool", json={}, headers=AUTH), 404, "not_found")
    expect_error(http.get("/no/such/path"), 404, "not_found")
    expect_error(http.post("/healthz"), 405, "method_not_allowed")
    expect_error(http.post("/tools/fetch_slots", content=b"[1, 2]", headers=AUTH), 422)
    expect_error(http.post("/tools/fetch_slots", json={}, headers=AUTH), 422, "invalid_input")
    expect_error(tool(http, "fetch_slots", session_id, limit=0), 422, "invalid_input")
    expect_error(tool(http, "fetch_slots", session_id, bogus=1), 422, "invalid_input")
    expect_error(tool(http, "book_appointment", session_id, slot_id="slot_x"), 409)
    expect_error(tool(http, "identify_user", session_id, phone="12"), 422, "invalid_phone")
    expect_error(http.post("/session/start", json=[1]), 422, "invalid_input")
    expect_error(http.post("/livekit/token", json={}), 422, "invalid_input")
    expect_error(http.get(f"/session/{session_id}/events", params={"after": -1}), 422)
    expect_error(http.get(f"/session/{session_id}/events", params={"after": "x"}), 422)
    expect_error(http.get(f"/session/{session_id}/events", params={"after": 2**63}), 422)
    expect_error(http.get(f"/session/{session_id}/events", params={"limit": 0}), 422)
    long_key = {**AUTH, "Idempotency-Key": "k" * 201}
    expect_error(
        http.post("/tools/fetch_slots", json={"session_id": session_id}, headers=long_key), 422
    )


async def test_bad_time_is_422_and_a_failed_tool_call_event(
    server: Server, http: httpx.Client
) -> None:
    session_id = identified(http)
    bad = {
        "book_appointment": {"start": "half past never"},
        "fetch_slots": {"date": "2027-02-30"},
        "modify_appointment": {"start": "2027-01-01T10:00", "new_start": "soonish"},
        "cancel_appointment": {"start": "yesterday at noon"},
    }
    keys = {name: new_key() for name in bad}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        websockets.connect(f"{server.ws_url}/session/{session_id}/events") as ws,
    ):
        seen = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [e["type"] for e in seen] == ["status", "tool_call"]
        for name, args in bad.items():
            answer = await client.post(
                f"/tools/{name}",
                json={"session_id": session_id, **args},
                headers={**AUTH, "Idempotency-Key": keys[name]},
            )
            expect_error(answer, 422, "invalid_time")
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in bad]
        logged = ok(await client.get(f"/session/{session_id}/tools"))
    assert [e["id"] for e in events] == [3, 4, 5, 6]
    for event, name in zip(events, bad, strict=True):
        call = event["payload"]
        assert event["type"] == "tool_call"
        assert call["name"] == name
        assert call["id"] == keys[name]
        assert call["status"] == "failed"
        assert call["error"]["code"] == "invalid_time"
        assert call["detail"].endswith((".", "?"))
    assert [c["status"] for c in logged] == ["completed", "failed", "failed", "failed", "failed"]
    assert logged[1:] == [e["payload"] for e in events]


NUL_CALLS: list[tuple[str, dict[str, Any], bool]] = [
    # (path, body without session_id, identify the caller first)
    ("/tools/identify_user", {"phone": "+1 415 555 0199", "name": "Ada\x00"}, False),
    ("/tools/fetch_slots", {"part_of_day": "morning\x00"}, True),
    ("/tools/fetch_slots", {"unknown\x00": 1}, True),
    ("/tools/book_appointment", {"slot_id": "slot\x00"}, True),
    ("/tools/book_appointment", {"start": "2027-01-01T10:00:00", "notes": "n\x00"}, True),
    ("/tools/cancel_appointment", {"appointment_id": "apt\x00"}, True),
    ("/tools/modify_appointment", {"appointment_id": "apt\x00", "new_slot_id": "slot"}, True),
    ("/tools/end_conversation", {"preferences": ["mornings\x00"]}, True),
    ("/tools/end_conversation", {"recap": "recap\x00"}, True),
    ("/agent/report", {"transcript": [{"role": "user", "text": "hi\x00"}]}, True),
    ("/agent/report", {"recap": "recap\x00"}, True),
]


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
            ],
        ),
    ],
)
def test_text_with_nul_characters_is_refused_not_a_500(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """U+0000 is valid JSON (and what a confused STT or LLM may emit); each backend answers
    with an error of the contract or a success, never a 5xx."""
    url = (
        request.getfixturevalue("pg_url")
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'voicebook.db'}"
    )
    env = {**BASE_ENV, "VOICEBOOK_DATABASE_URL": url}
    statuses = {}
    # A fresh connection per request: after an unhandled error uvicorn drops the connection.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with (
        running_server(env, tmp_path) as nul_server,
        httpx.Client(base_url=nul_server.url, timeout=10, limits=fresh) as client,
    ):
        for path, args, identify in NUL_CALLS:
            session_id = identified(client) if identify else start(client)
            body = {"session_id": session_id, **args}
            answer = client.post(path, json=body, headers={"Idempotency-Key": new_key()})
            statuses[f"{path} {sorted(args)}"] = answer.status_code
            if answer.status_code != 200:
                assert answer.json()["error"]["code"]
        answer = client.post("/tools/fetch_slots", json={"session_id": "A" * 20 + "\x00"})
        statuses["session id with NUL"] = answer.status_code
    assert all(status < 500 for status in statuses.values()), statuses


def test_no_server_errors_anywhere(server: Server, http: httpx.Client) -> None:
    """Runs last: every error answer of this module had the contract's shape, none was a 5xx
    (other than the documented 503 of an unconfigured LiveKit), and the log has no traceback."""
    assert len(SEEN_ERRORS) > 50
    for where, answer in SEEN_ERRORS:
        assert answer.status_code < 500 or (
            answer.status_code == 503 and where.endswith("/livekit/token")
        ), where
    metrics = http.get("/metrics", headers=AUTH).text
    statuses = set(
        re.findall(r'voicebook_http_request_duration_seconds_count\{[^}]*status="(\d+)"', metrics)
    )
    assert not {s for s in statuses if s.startswith("5")} - {"503"}, statuses
    log = server.log()
    assert "Traceback" not in log
    assert "unexpected error" not in log


# --- `voicebook serve` on a public interface ----------------------------------------------------


def test_serve_on_a_public_interface_needs_a_key(tmp_path: Path) -> None:
    env = {**clean_env(), "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}"}
    command = [sys.executable, "-m", "voicebook", "serve", "--host", "0.0.0.0"]
    done = subprocess.run(
        [*command, "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "VOICEBOOK_API_KEY" in output
    assert "--insecure" in output
    assert "Traceback" not in output


def test_serve_on_a_public_interface_with_insecure_starts(tmp_path: Path) -> None:
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}",
        "VOICEBOOK_VERIFICATION": "off",  # console codes are refused off loopback, key or not
    }
    with running_server(env, tmp_path, args=("--host", "0.0.0.0", "--insecure")) as public:
        assert httpx.get(f"{public.url}/healthz").status_code == 200
        assert "auth       off" in public.log()
