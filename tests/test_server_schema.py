"""Schemathesis against a real `voicebook serve`: every operation of the app's own OpenAPI schema,
with generated (valid and invalid) requests, answers without a 5xx and as documented — status
code, content type and body schema.

Generated session ids would almost always be unknown (404), so each case is sent either as
generated, or aimed at a freshly started session, or at one whose caller has already identified,
so the tools' real answers are exercised too.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend_servers import BACKENDS, server_on
from servers import Server
from voicebook.config import Settings
from voicebook.server.app import create_app

API_KEY = "schema-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
    "LIVEKIT_URL": "wss://voicebook-schema.livekit.cloud",
    "LIVEKIT_API_KEY": "APIschematest",
    "LIVEKIT_API_SECRET": "schema-secret-0123456789abcdef0123456789abcdef",
}
MAX_EXAMPLES = int(os.environ.get("VOICEBOOK_SCHEMA_EXAMPLES", "20"))


def app_schema() -> dict[str, Any]:
    """The OpenAPI document of `create_app` (building the app opens nothing)."""
    unused = Settings(_env_file=None, database_url="sqlite:///unused-schema-test.db")
    return create_app(unused).openapi()


schema = schemathesis.openapi.from_dict(app_schema())


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
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def new_session(http: httpx.Client, identify: bool) -> str:
    started = http.post("/session/start")
    assert started.status_code == 200, started.text
    session_id = started.json()["session_id"]
    if identify:
        answer = http.post(
            "/tools/identify_user",
            json={"session_id": session_id, "phone": "+1 415 555 0199", "name": "Schema"},
            headers={**AUTH, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert answer.status_code == 200, answer.text
    return session_id


REACHED: dict[str, set[int]] = {}
"""Statuses seen per operation ("POST /tools/fetch_slots"), for the depth check at the end."""
TARGETS = ("generated", "fresh", "identified")


def target_of(case: schemathesis.Case) -> str:
    """Where to aim the case, derived from its own generated data (so Hypothesis can replay it)."""
    body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else None
    data = repr((case.path_parameters, case.query, case.headers, body))
    return TARGETS[hashlib.sha256(data.encode()).digest()[0] % len(TARGETS)]


def aim(case: schemathesis.Case, http: httpx.Client, target: str) -> None:
    """Point the case's session id (path or body) at a real session, unless `target` is
    'generated'. A deliberately malformed id (not a string) is left as generated."""
    if target == "generated":
        return
    path = case.path_parameters or {}
    body = case.body if isinstance(case.body, dict) else {}
    if isinstance(path.get("session_id"), str):
        case.path_parameters = {**path, "session_id": new_session(http, target == "identified")}
    elif isinstance(body.get("session_id"), str):
        case.body = {**body, "session_id": new_session(http, target == "identified")}


def test_served_schema_is_the_app_schema(http: httpx.Client) -> None:
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == app_schema()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, backend: str, server: Server, http: httpx.Client
) -> None:
    target = target_of(case)
    aim(case, http, target)
    response = case.call(base_url=server.url, headers=AUTH, timeout=10)
    REACHED.setdefault(case.operation.label, set()).add(response.status_code)
    case.validate_response(response, checks=CHECKS)


def test_service_key_is_documented() -> None:
    document = app_schema()
    assert document.get("components", {}).get("securitySchemes")
    for path, item in document["paths"].items():
        if path.startswith(("/tools/", "/agent/")):
            assert item["post"].get("security"), path


def test_every_documented_error_is_the_error_body() -> None:
    document = app_schema()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status, ref)


def test_body_limit_is_documented() -> None:
    document = app_schema()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "post":
                assert "413" in operation["responses"], path


def test_generated_requests_reached_real_answers() -> None:
    """Runs after the generated tests: aiming at real sessions made them reach the success path
    of the operations that have one for arbitrary valid input (not just 404s and 422s)."""
    if len(REACHED) < 17:
        pytest.skip("needs the whole generated test run")
    for label in (
        "POST /session/start",
        "POST /livekit/token",
        "GET /session/{session_id}",
        "GET /session/{session_id}/tools",
        "GET /session/{session_id}/events",
        "POST /session/{session_id}/end",
        "POST /tools/identify_user",
        "POST /tools/fetch_slots",
        "POST /tools/retrieve_appointments",
        "POST /tools/end_conversation",
        "POST /agent/report",
    ):
        assert 200 in REACHED[label], (label, REACHED[label])
    for label in ("POST /tools/fetch_slots", "GET /session/{session_id}/events"):
        assert 404 in REACHED[label] and 422 in REACHED[label], (label, REACHED[label])
