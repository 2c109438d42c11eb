"""No input is a 500 (DESIGN §3), against a real `voicebook serve` on SQLite and on Postgres.

First one regression test per input that once crashed the server — 60 KB of `[`, instants in
year 1 or 9999, a lone surrogate in a name (after which the session's /tools and /events answered
500 forever on SQLite), `Infinity`/`NaN` and unbounded usage (a cost of 1.5e23 USD), huge arrays —
then a Hypothesis fuzzer that puts such values into every field and query parameter of every
operation of the app's OpenAPI schema. Every answer is a 2xx or a 4xx with the error envelope,
within `TIMEOUT_S`, and the session aimed at still answers /tools and /events with 200.

Bodies are sent as bytes written by `json.dumps`, which (unlike httpx's `json=`) escapes lone
surrogates and writes `NaN`/`Infinity`, as a hostile or buggy client does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend_servers import BACKENDS, server_on
from servers import Server
from voicebook.config import Settings
from voicebook.models import unstorable_text
from voicebook.server.app import create_app

API_KEY = "hostile-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    "VOICEBOOK_RATE_LIMIT_PER_ADDRESS": "100000/minute",
    "VOICEBOOK_RATE_LIMIT_PER_SESSION": "100000/minute",
    "LIVEKIT_URL": "wss://voicebook-hostile.livekit.cloud",
    "LIVEKIT_API_KEY": "APIhostiletest",
    "LIVEKIT_API_SECRET": "hostile-secret-0123456789abcdef0123456789abcdef",
}
TIMEOUT_S = 15.0
"""Longer than any honest answer takes on a busy machine: beyond it the server hung."""
MAX_EXAMPLES = int(os.environ.get("VOICEBOOK_FUZZ_EXAMPLES", "40"))
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59",
]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
UNBOUNDED = ["1" + "0" * 30, "1.5e23", str(2**63)]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with server_on(backend, ENV, request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S, headers=AUTH) as client:
        yield client


@pytest.fixture(autouse=True)
def no_unexpected_errors(server: Server) -> Iterator[None]:
    """After each test: the server logged no unexpected error (a 500 leaves a traceback)."""
    yield
    log = server.log()
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]


# --- helpers ---------------------------------------------------------------------------------


def send(
    http: httpx.Client, method: str, url: str, body: bytes | str | None = None
) -> httpx.Response:
    """One request with a fresh idempotency key; a body is sent as JSON bytes, unchecked."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if body is not None:
        headers["Content-Type"] = "application/json"
    content = body.encode() if isinstance(body, str) else body
    return http.request(method, url, content=content, headers=headers)


def tool(http: httpx.Client, tool_name: str, session_id: str, **args: Any) -> httpx.Response:
    body = json.dumps({"session_id": session_id, **args})
    return send(http, "POST", f"/tools/{tool_name}", body)


def start(http: httpx.Client) -> str:
    answer = http.post("/session/start")
    assert answer.status_code == 200, answer.text
    return answer.json()["session_id"]


def identified(http: httpx.Client) -> str:
    session_id = start(http)
    answer = tool(http, "identify_user", session_id, phone="+1 415 555 0199", name="Hostile")
    assert answer.status_code == 200, answer.text
    return session_id


def refused(answer: httpx.Response, code: str, status: int = 422) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    assert error["message"].endswith((".", "?")), error
    return error


def readable_log(http: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    """The session's tool calls; both log reads answer 200 with text that is valid Unicode."""
    for path in (f"/session/{session_id}/tools", f"/session/{session_id}/events"):
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert not unstorable_text(answer.json()), answer.text
    return http.get(f"/session/{session_id}/tools").json()


def failed_calls(http: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    return [call for call in readable_log(http, session_id) if call["status"] == "failed"]


# --- the inputs that crashed ------------------------------------------------------------------


def test_deep_nesting_is_refused_on_every_body_endpoint(http: httpx.Client) -> None:
    session_id = identified(http)
    posts = [p for p, item in SCHEMA["paths"].items() if "post" in item]
    assert len(posts) >= 12
    deep_field = f'{{"session_id": "{session_id}", "name": {"[" * 1000}{"]" * 1000}}}'
    for path in posts:
        url = path.replace("{session_id}", session_id)
        refused(send(http, "POST", url, "[" * 60_000), "invalid_input")
        refused(send(http, "POST", url, deep_field), "invalid_input")
    readable_log(http, session_id)


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_instants_outside_the_bookable_years_are_invalid_time(
    http: httpx.Client, instant: str
) -> None:
    session_id = identified(http)
    calls = [
        ("book_appointment", {"start": instant}),
        ("cancel_appointment", {"start": instant}),
        ("modify_appointment", {"start": instant, "new_start": "2027-01-04T10:00:00"}),
        ("modify_appointment", {"appointment_id": "apt_unknown", "new_start": instant}),
        ("fetch_slots", {"date": instant[:10]}),
    ]
    for name, args in calls:
        refused(tool(http, name, session_id, **args), "invalid_time")
    failed = failed_calls(http, session_id)
    assert [(c["name"], c["error"]["code"]) for c in failed] == [
        (name, "invalid_time") for name, _ in calls
    ]


SURROGATE_CALLS: list[tuple[str, dict[str, Any], bool]] = [
    # (path, body, whether the body names the session)
    ("/tools/identify_user", {"phone": "+1 415 555 0199", "name": "Ada \ud800"}, True),
    ("/tools/book_appointment", {"start": "2027-01-04T10:00:00", "notes": "\udfff"}, True),
    ("/tools/end_conversation", {"preferences": ["mornings \ud83d"]}, True),
    ("/tools/fetch_slots", {"\udc00": 1}, True),
    ("/agent/report", {"transcript": [{"role": "user", "text": "hi \ud800"}]}, True),
    ("/agent/report", {"recap": "\udbff"}, True),
    ("/livekit/token", {"identity": "caller-\ud800"}, True),
    ("/livekit/token", {"name": "\ud800"}, True),
    ("/session/{session_id}/caller", {"phone": "+14155550199", "name": "\ud800"}, False),
    ("/session/start", {"phone": "+14155550199", "name": "Bo \ud800"}, False),
]


def test_lone_surrogates_are_refused_and_the_log_stays_readable(http: httpx.Client) -> None:
    session_id = identified(http)
    for path, args, names_session in SURROGATE_CALLS:
        body = {"session_id": session_id, **args} if names_session else args
        url = path.replace("{session_id}", session_id)
        refused(send(http, "POST", url, json.dumps(body)), "invalid_input")
        readable_log(http, session_id)  # once, this answered 500 for good
    recorded = failed_calls(http, session_id)
    assert [c["name"] for c in recorded] == [
        "identify_user",
        "book_appointment",
        "end_conversation",
        "fetch_slots",
    ]
    assert recorded[0]["args"]["name"] == "Ada \ufffd"  # kept, but as storable text
    # A session id that is not text at all names no session.
    refused(tool(http, "fetch_slots", "\ud800" * 22), "invalid_input")


def test_non_finite_and_unbounded_numbers_are_refused(http: httpx.Client) -> None:
    session_id = start(http)
    for field in (
        "llm_input_tokens",
        "llm_output_tokens",
        "stt_seconds",
        "tts_characters",
        "avatar_seconds",
    ):
        for number in NON_FINITE + UNBOUNDED:
            body = f'{{"session_id": "{session_id}", "usage": {{"{field}": {number}}}}}'
            refused(send(http, "POST", "/agent/report", body), "invalid_input")
    for number in NON_FINITE + UNBOUNDED:
        body = f'{{"session_id": "{session_id}", "limit": {number}}}'
        refused(send(http, "POST", "/tools/fetch_slots", body), "invalid_input")
        for parameter in ("after", "limit"):
            url = f"/session/{session_id}/events?{parameter}={quote(number)}"
            refused(send(http, "GET", url), "invalid_input")
    ended = http.post(f"/session/{session_id}/end")
    assert ended.status_code == 200, ended.text
    cost = ended.json()["summary"]["cost"]
    figures = [cost["total"], *cost["items"].values()]
    assert all(isinstance(f, (int, float)) and math.isfinite(f) for f in figures), cost
    assert cost["total"] == 0, cost  # no usage was accepted


def test_huge_arrays_are_refused_and_logged_bounded(http: httpx.Client) -> None:
    session_id = identified(http)
    many = list(range(8000))
    cases = [
        ("/tools/end_conversation", {"preferences": ["x"] * 5000}),
        ("/tools/fetch_slots", {"unknown": many}),
        ("/tools/fetch_slots", {"part_of_day": many}),
        ("/tools/book_appointment", {"slot_id": many}),
        ("/agent/report", {"transcript": [{"role": "user", "text": "x"}] * 1000}),
    ]
    for path, args in cases:
        body = json.dumps({"session_id": session_id, **args})
        assert len(body) < 65_536  # within the body limit: the models must refuse it
        refused(send(http, "POST", path, body), "invalid_input")
    recorded = failed_calls(http, session_id)
    assert len(recorded) == 4
    for call in recorded:
        assert len(json.dumps(call["args"])) < 5_000, call["name"]
    too_big = json.dumps({"session_id": session_id, "preferences": ["x" * 100] * 1000})
    refused(send(http, "POST", "/tools/end_conversation", too_big), "payload_too_large", 413)


async def ws_outcome(url: str) -> tuple[str, int]:
    """("status", the HTTP status) when the handshake is refused, else ("close", the close code
    of a socket that ends by itself)."""
    try:
        async with websockets.connect(url, open_timeout=TIMEOUT_S) as ws:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            except ConnectionClosed:
                return "close", ws.close_code or 1005
    except InvalidStatus as refusal:
        return "status", refusal.response.status_code


@pytest.mark.parametrize("after", ["1e400", "NaN", "-1", "9" * 40, "%ED%A0%80"])
async def test_hostile_resume_points_on_the_websocket(
    server: Server, http: httpx.Client, after: str
) -> None:
    """The event socket refuses (or closes on) an `after` that is no event id; never a 500."""
    session_id = start(http)
    kind, code = await ws_outcome(f"{server.ws_url}/session/{session_id}/events?after={after}")
    if kind == "status":
        assert 400 <= code < 500, code
    else:
        assert code not in (1000, 1011), code  # refused, not served nor an internal error
    readable_log(http, session_id)


# --- the fuzzer --------------------------------------------------------------------------------


def _app_schema() -> dict[str, Any]:
    unused = Settings(_env_file=None, database_url="sqlite:///unused-hostile-test.db")
    return create_app(unused).openapi()


SCHEMA = _app_schema()
PLACEHOLDER = "__hostile__"


def _targets(schema: dict[str, Any], ref: str | None, depth: int = 0) -> list[tuple[Any, ...]]:
    """Paths into a request body (keys, and index 0 of arrays) down to two levels."""
    if ref is None or depth > 1:
        return []
    model = SCHEMA["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    found: list[tuple[Any, ...]] = []
    for name, field in model.get("properties", {}).items():
        found.append((name,))
        for option in [field, *field.get("anyOf", [])]:
            found += [(name, *t) for t in _targets(schema, option.get("$ref"), depth + 1)]
            items = option.get("items", {})
            found += [(name, 0, *t) for t in _targets(schema, items.get("$ref"), depth + 1)]
    return found


def _operations() -> list[dict[str, Any]]:
    """Every operation of the schema: method, path, body targets, query parameters."""
    operations = []
    for path, item in SCHEMA["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema", {})
            refs = [o["$ref"] for o in [body, *body.get("anyOf", [])] if "$ref" in o]
            ref = refs[0] if refs else None
            body_schema = SCHEMA["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else {}
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "targets": [*_targets(SCHEMA, ref), ("unknown_field",)],
                    "session_in_body": "session_id" in body_schema.get("properties", {}),
                    "query": [
                        p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                    ],
                }
            )
    return operations


OPERATIONS = _operations()
_deep = st.integers(17, 3000).map(lambda n: "[" * n + "]" * n)
_unclosed = st.integers(17, 20_000).map(lambda n: "[" * n)
_wide = st.integers(50, 5000).map(lambda n: "[" + ",".join(["0"] * n) + "]")
_texts = st.text(st.characters(categories=["Cs", "Cc", "Lo", "Nd"]), max_size=12).map(json.dumps)
_instants = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59),
    timezones=st.sampled_from(
        [None, timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))]
    ),
).map(lambda moment: json.dumps(moment.isoformat()))
_numbers = st.one_of(
    st.sampled_from(NON_FINITE + UNBOUNDED),
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
)
HOSTILE = st.one_of(
    _deep,
    _unclosed,
    _wide,
    _texts,
    _instants,
    _numbers,
    st.sampled_from([json.dumps(t) for t in OUT_OF_RANGE] + ['"9999-12-31"', '"0001-01-01"']),
)
"""JSON text a hostile client might send where a value goes."""


def _nested(target: tuple[Any, ...]) -> Any:
    """The placeholder at `target` (keys, and 0 for an array's first item)."""
    if not target:
        return PLACEHOLDER
    inner = _nested(target[1:])
    return [inner] if target[0] == 0 else {target[0]: inner}


def _query_value(fragment: str) -> str:
    """A hostile fragment as a query value: its JSON text, percent-encoded (or raw invalid UTF-8
    when it is a string holding a surrogate)."""
    if "\\ud" in fragment:
        return "%ED%A0%80"
    return quote(fragment.strip('"'), safe="")


@given(
    operation=st.sampled_from(OPERATIONS),
    fragment=HOSTILE,
    choice=st.integers(0, 10_000),
    whole=st.booleans(),
    identify=st.booleans(),
)
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_values_anywhere_are_never_a_500_or_a_hang(
    http: httpx.Client,
    operation: dict[str, Any],
    fragment: str,
    choice: int,
    whole: bool,
    identify: bool,
) -> None:
    session_id = identified(http) if identify else start(http)
    url = operation["path"].replace("{session_id}", session_id)
    body: str | None = None
    if operation["method"] == "POST":
        if whole:
            body = fragment
        else:
            base = {"session_id": session_id} if operation["session_in_body"] else {}
            target = operation["targets"][choice % len(operation["targets"])]
            body = json.dumps({**base, **_nested(target)}).replace(
                json.dumps(PLACEHOLDER), fragment
            )
    parameters = operation["query"] or ["after"]
    url += f"?{parameters[choice % len(parameters)]}={_query_value(fragment)}"
    answer = send(http, operation["method"], url, body)
    assert answer.status_code < 500, (operation["path"], body and body[:300], answer.text)
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert SNAKE.match(error["code"]) and error["message"], error
    readable_log(http, session_id)
