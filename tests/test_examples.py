"""The examples in examples/ run against a real `voicebook serve`.

- bff_app.py: served by uvicorn in a subprocess on a free port, pointed at the server with the
  service key; `POST /api/call` answers a session and a LiveKit token (minted offline: LIVEKIT_*
  are dummy values), verified with LiveKit's own TokenVerifier. The answer never holds the key.
- book_flow.py: run as a script; exit 0 and every step named in its output.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livekit import api

from servers import Server, clean_env, free_port, keyed_server, running_process
from voicebook.sdk import Client

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
API_KEY = "svc-example-key-0123456789"
LIVEKIT_URL = "wss://voicebook-example.livekit.invalid"
LIVEKIT_KEY = "APIexamplekey"
LIVEKIT_SECRET = "example-secret-0123456789abcdef0123456789abcdef"
AGENT = "receptionist-example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with keyed_server(
        tmp_path_factory,
        "examples",
        API_KEY,
        LIVEKIT_URL=LIVEKIT_URL,
        LIVEKIT_API_KEY=LIVEKIT_KEY,
        LIVEKIT_API_SECRET=LIVEKIT_SECRET,
        LIVEKIT_AGENT_NAME=AGENT,
    ) as running:
        yield running


@contextlib.contextmanager
def running_bff(voicebook_url: str, tmp_path: Path) -> Iterator[str]:
    """examples/bff_app.py under uvicorn, holding the service key; yields its base URL."""
    port = free_port()
    log_path = tmp_path / f"bff-{port}.log"
    env = clean_env(VOICEBOOK_URL=voicebook_url, VOICEBOOK_API_KEY=API_KEY)
    argv = [sys.executable, "-m", "uvicorn", "bff_app:app", "--app-dir", str(EXAMPLES)]
    url = f"http://127.0.0.1:{port}"
    with running_process(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        ready_url=url + "/",
        env=env,
        cwd=tmp_path,
        log_path=log_path,
    ):
        yield url
    assert API_KEY not in log_path.read_text(errors="replace")


@pytest.fixture
def bff(server: Server, tmp_path: Path) -> Iterator[str]:
    with running_bff(server.url, tmp_path) as url:
        yield url


def test_bff_starts_a_session_and_returns_a_livekit_token(bff: str, server: Server) -> None:
    answer = httpx.post(bff + "/api/call", json={"name": "Ana"}, timeout=30)
    assert answer.status_code == 200, answer.text
    call = answer.json()
    assert set(call) == {"session_id", "ws_url", "token", "url", "room"}
    assert API_KEY not in answer.text  # the browser never sees the service key
    assert LIVEKIT_SECRET not in answer.text

    session_id = call["session_id"]
    assert call["room"] == session_id
    assert call["url"] == LIVEKIT_URL
    assert call["ws_url"] == f"{server.ws_url}/session/{session_id}/events"

    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(call["token"])
    assert claims.name == "Ana"
    assert claims.video is not None
    assert claims.video.room_join is True
    assert claims.video.room == session_id
    assert claims.room_config is not None
    (agent,) = claims.room_config.agents
    assert agent.agent_name == AGENT
    assert json.loads(agent.metadata) == {"session_id": session_id}

    with Client(server.url, API_KEY) as vb:  # the session is real, on the voicebook server
        assert vb.get_session(session_id).state == "connected"


def test_bff_without_a_body_and_serves_its_page(bff: str) -> None:
    answer = httpx.post(bff + "/api/call", timeout=30)
    assert answer.status_code == 200, answer.text
    api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(answer.json()["token"])

    page = httpx.get(bff + "/", timeout=10)
    assert page.status_code == 200
    assert "/api/call" in page.text
    assert API_KEY not in page.text


def test_bff_passes_voicebook_errors_on_as_json(tmp_path: Path) -> None:
    """voicebook unreachable: a JSON error for the browser (502), with no key in it."""
    with running_bff("http://127.0.0.1:1", tmp_path) as url:
        answer = httpx.post(url + "/api/call", timeout=60)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "connection_failed"
    assert API_KEY not in answer.text


def test_book_flow_books_lists_reschedules_and_cancels(server: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "book_flow.py"), "--phone", "+1 415 555 0199"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [
        "1. start session",
        "2. identify caller: ***0199",
        "3. fetch slots",
        "4. book",
        "5. list: 1 upcoming",
        "6. reschedule",
        "7. cancel",
        "is now cancelled",
        "8. list with cancelled",
        "9. end conversation",
        "done",
    ]
    for expected in steps:
        assert expected in out, out
    assert [out.index(s) for s in steps] == sorted(out.index(s) for s in steps)
    assert API_KEY not in out + result.stderr


def test_book_flow_takes_url_and_key_as_arguments(server: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "book_flow.py"),
            "--url",
            server.url,
            "--api-key",
            API_KEY,
            "--phone",
            "+1 415 555 0198",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "9. end conversation" in result.stdout

    wrong = subprocess.run(
        [sys.executable, str(EXAMPLES / "book_flow.py"), "--url", server.url, "--api-key", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert wrong.returncode == 1
    assert "unauthorized" in wrong.stderr
