"""The console's Try-it socket (`WS /console/api/try`) against a real `voicebook serve`, with the
scripted stand-in model as the server's LLM: the same receptionist as `voicebook call --text`,
its turns and tool calls as JSON, the summary when the call ends, and every refusal with a code.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from agent_support import ASK, BOOKING_RULES, BYE, IDENTIFY, require_agent_extra
from scripted_llm import ScriptedServer, scripted_llm
from servers import Server, running_server
from voicebook.sdk import Client
from voicebook.server.console.auth import CSRF_HEADER

require_agent_extra()

PASSWORD = "try-it-test-password"
SERVICE_KEY = "service-key-for-try-it-tests"
BROKEN = "Say something the model cannot."


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedServer]:
    with scripted_llm({**BOOKING_RULES, BROKEN: [{"status": 500}]}) as running:
        yield running


def start_server(tmp: Path, model: ScriptedServer | None, **env: str) -> Any:
    llm = model.env() if model is not None else {}
    return running_server(
        {
            "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
            "VOICEBOOK_API_KEY": SERVICE_KEY,
            "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'voicebook.db'}",
            **llm,
            **env,
        },
        tmp,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model: ScriptedServer) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("try"), model) as running:
        yield running


@contextlib.contextmanager
def sign_in(server: Server) -> Iterator[httpx.Client]:
    """An operator's client: signed in through the console's own sign-in."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = client.get("/console/api/me").json()["csrf_token"]
        answer = client.post(
            "/console/api/login", json={"password": PASSWORD}, headers={CSRF_HEADER: token}
        )
        assert answer.status_code == 204, answer.text
        yield client


@pytest.fixture(scope="module")
def operator(server: Server) -> Iterator[httpx.Client]:
    with sign_in(server) as client:
        yield client


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def open_try(server: Server, client: httpx.Client | None, origin: str | None = None) -> Any:
    headers = {"Origin": origin or server.url}
    if client is not None:
        headers["Cookie"] = cookie_header(client)
    return connect(f"{server.ws_url}/console/api/try", additional_headers=headers)


def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=60))


def until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type `kind` (a turn may be preceded by nothing else; errors fail)."""
    message = receive(ws)
    assert message["type"] == kind, message
    return message


def started(ws: ClientConnection) -> str:
    """Read the start and the greeting; the session id."""
    session_id = until(ws, "started")["session_id"]
    greeting = until(ws, "turn")
    assert greeting["agent"] and greeting["agent"][0].strip()
    assert greeting["tool_calls"] == [] and greeting["error"] is None
    return session_id


def say(ws: ClientConnection, text: str) -> dict[str, Any]:
    ws.send(json.dumps({"text": text}))
    return until(ws, "turn")


def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=60)
    return ws.close_code


def test_a_conversation_greets_calls_tools_and_ends_with_the_summary(
    server: Server, operator: httpx.Client
) -> None:
    with open_try(server, operator) as ws:
        session_id = started(ws)

        identified = say(ws, IDENTIFY)
        (identify,) = identified["tool_calls"]
        assert identify["name"] == "identify_user" and identify["ok"] is True
        # The number the caller gave is masked wherever the operator sees it.
        assert "0101" in json.dumps(identify["arguments"])
        assert "415 555 0101" not in json.dumps(identified)

        offered = say(ws, ASK)
        assert offered["agent"] == ["The first free time is the one I found. Shall I book it?"]
        (fetch,) = offered["tool_calls"]
        assert fetch["name"] == "fetch_slots" and fetch["ok"] is True
        assert fetch["arguments"] == {"limit": 3}
        assert json.loads(fetch["output"])["slots"]

        # The receptionist says goodbye and ends the call: the summary follows by itself.
        goodbye = say(ws, BYE)
        assert goodbye["agent"] == ["Goodbye, Ada!"]
        assert [c["name"] for c in goodbye["tool_calls"]] == ["end_conversation"]
        summary = until(ws, "summary")
        assert summary["session_id"] == session_id
        assert summary["summary"]["cost"]["total"] > 0
        assert "415 555 0101" not in json.dumps(summary)
        assert closed_code(ws) == 1000

    # It was a normal session: the same log the Calls tab and the session's socket read.
    with Client(server.url, SERVICE_KEY) as client:
        events = client.session_events(session_id)
    tools = [e.payload["name"] for e in events if e.type == "tool_call"]
    assert tools == ["identify_user", "fetch_slots", "end_conversation"]
    assert events[-1].type == "session_closed"


def test_hanging_up_ends_and_summarises_the_call(server: Server, operator: httpx.Client) -> None:
    with open_try(server, operator) as ws:
        session_id = started(ws)
        ws.send(json.dumps({"type": "end"}))
        summary = until(ws, "summary")
        assert summary["session_id"] == session_id
        assert closed_code(ws) == 1000
    with Client(server.url, SERVICE_KEY) as client:
        assert client.get_session(session_id).state == "ended"


def test_closing_the_page_mid_turn_still_ends_and_summarises_the_call(
    server: Server, operator: httpx.Client
) -> None:
    with open_try(server, operator) as ws:
        session_id = started(ws)
        ws.send(json.dumps({"text": ASK}))
    # The page is gone while the receptionist was answering: the server hangs up for it. The
    # session's own socket (as the Calls tab follows it) sees the summary and the close.
    with Client(server.url, SERVICE_KEY) as client, client.stream_events(session_id) as events:
        kinds = [event.type for event in events]  # ends after session_closed
    assert "summary" in kinds and kinds[-1] == "session_closed"


def test_a_refused_line_has_a_code_and_the_conversation_goes_on(
    server: Server, operator: httpx.Client
) -> None:
    with open_try(server, operator) as ws:
        started(ws)
        ws.send(json.dumps({"text": "x" * 1001}))
        assert until(ws, "error")["code"] == "message_too_long"
        ws.send("not json")
        assert until(ws, "error")["code"] == "invalid_message"
        ws.send(json.dumps({"text": "   "}))
        assert until(ws, "error")["code"] == "invalid_message"
        # One turn at a time: a line sent while the receptionist is answering is refused.
        ws.send(json.dumps({"text": ASK}))
        ws.send(json.dumps({"text": ASK}))
        assert until(ws, "error")["code"] == "turn_in_progress"
        assert until(ws, "turn")["tool_calls"][0]["name"] == "fetch_slots"
        ws.send(json.dumps({"type": "end"}))
        until(ws, "summary")


def test_the_model_failing_mid_turn_gives_a_sentence_not_a_stack(
    server: Server, operator: httpx.Client
) -> None:
    with open_try(server, operator) as ws:
        started(ws)
        turn = say(ws, BROKEN)
        assert turn["error"]["code"] == "llm_failed"
        assert turn["error"]["message"].endswith(".")
        assert "Traceback" not in json.dumps(turn)
        assert turn["agent"]  # the caller heard the apology
        # The session ended with the model: the summary follows, as for any end of call.
        assert until(ws, "summary")["summary"] is not None


@pytest.mark.parametrize("signed_in", [True, False], ids=["foreign-origin", "not-signed-in"])
def test_refused_without_a_sign_in_or_from_another_site(
    server: Server, operator: httpx.Client, signed_in: bool
) -> None:
    client = operator if signed_in else None
    origin = "https://evil.example" if signed_in else None
    with pytest.raises(InvalidStatus) as refused:
        open_try(server, client, origin)
    response = refused.value.response
    expected = (403, "csrf_refused") if signed_in else (401, "sign_in_required")
    assert (response.status_code, json.loads(response.body)["error"]["code"]) == expected


def test_conversations_per_process_are_capped_and_an_idle_one_ends(
    tmp_path: Path, model: ScriptedServer
) -> None:
    env = {"VOICEBOOK_CONSOLE_TRY_CONVERSATIONS": "1", "VOICEBOOK_CONSOLE_TRY_IDLE_S": "2"}
    with start_server(tmp_path, model, **env) as tight, sign_in(tight) as client:
        with open_try(tight, client) as first:
            started(first)
            with open_try(tight, client) as second:
                refused = until(second, "error")
                assert refused["code"] == "too_many_conversations"
                assert "VOICEBOOK_CONSOLE_TRY_CONVERSATIONS" in refused["message"]
                assert closed_code(second) == 1013
            # Nobody says anything: the call ends, and is summarised.
            assert until(first, "error")["code"] == "idle_timeout"
            until(first, "summary")
            assert closed_code(first) == 1000
        # Its seat is free again.
        with open_try(tight, client) as third:
            started(third)


def test_without_a_model_the_tab_names_the_variable_to_set(tmp_path: Path) -> None:
    with start_server(tmp_path, None) as bare:
        assert httpx.get(f"{bare.url}/console/api/me").json()["try_it"] is None  # strangers
        with sign_in(bare) as client:
            state = client.get("/console/api/me").json()["try_it"]
            assert state["available"] is False and state["code"] == "llm_not_configured"
            assert "OPENROUTER_API_KEY" in state["message"]
            assert "OPENAI_API_BASE" in state["message"]
            with open_try(bare, client) as ws:
                error = until(ws, "error")
                assert error["code"] == "llm_not_configured"
                assert closed_code(ws) == 1011


HIDE_THE_AGENT = """\
import sys


class HideTheAgent:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("livekit.agents", "livekit.plugins")):
            raise ModuleNotFoundError(name)
        return None


sys.meta_path.insert(0, HideTheAgent())
"""


def test_without_the_agent_extra_the_tab_says_what_to_install(
    tmp_path: Path, model: ScriptedServer
) -> None:
    """A server installed without `voicebook[agent]` (livekit-agents hidden from it) serves
    the console all the same, and the tab says which command installs what it lacks."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(HIDE_THE_AGENT)
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    with start_server(tmp_path, model, PYTHONPATH=path) as bare, sign_in(bare) as client:
        state = client.get("/console/api/me").json()["try_it"]
        assert state["available"] is False and state["code"] == "agent_extra_missing"
        assert "voicebook[agent]" in state["message"]
        with open_try(bare, client) as ws:
            assert until(ws, "error")["code"] == "agent_extra_missing"
            assert closed_code(ws) == 1011


def test_with_a_model_the_tab_is_available(operator: httpx.Client) -> None:
    assert operator.get("/console/api/me").json()["try_it"] == {
        "available": True,
        "code": None,
        "message": None,
    }
