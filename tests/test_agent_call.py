"""`voicebook call --text` as a user runs it: subprocesses against a real `voicebook serve`
(SQLite or Postgres), with the scripted stand-in model as the LLM (`voicebook eval` is
test_agent_eval.py's)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent_support import (
    ASK,
    BOOK,
    BOOKING_RULES,
    BYE,
    IDENTIFY,
    Terminal,
    require_agent_extra,
    voicebook,
)
from servers import clean_env, free_port, running_server
from voicebook.agent.greeting import DEFAULT_GREETING
from voicebook.models import TOOL_NAMES
from voicebook.sdk import Client

require_agent_extra()


def _appointment_status(database_url: str, appointment_id: str) -> str | None:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            row = db.execute(
                "SELECT status FROM appointments WHERE id = ?", (appointment_id,)
            ).fetchone()
    else:
        with psycopg.connect(database_url) as db:
            row = db.execute(
                "SELECT status FROM appointments WHERE id = %s", (appointment_id,)
            ).fetchone()
    return row[0] if row else None


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'voicebook.db'}"
    return request.getfixturevalue("pg_url")


def test_call_text_identifies_offers_books_and_ends(
    database: str, scripted: Any, tmp_path: Path
) -> None:
    scripted.model.add(BOOKING_RULES)
    with running_server({"VOICEBOOK_DATABASE_URL": database}, tmp_path) as server:
        args = ["call", "--text", "--json", "--url", server.url]
        for line in (IDENTIFY, ASK, BOOK, BYE):
            args += ["--say", line]
        done = voicebook(*args, env=clean_env(scripted.env()), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)

        calls = document["tool_calls"]
        assert [c["name"] for c in calls] == [
            "identify_user",
            "fetch_slots",
            "book_appointment",
            "end_conversation",
        ]
        assert all(c["ok"] for c in calls), calls
        assert [t["user"] for t in document["turns"]] == [None, IDENTIFY, ASK, BOOK, BYE]
        assert document["turns"][-1]["agent"] == ["Goodbye, Ada!"]
        booked = json.loads(calls[2]["output"])["appointment"]
        offered = json.loads(calls[1]["output"])["slots"][0]
        assert booked["label"] == offered["label"]

        # The booking is a row in the database, confirmed.
        assert _appointment_status(database, booked["id"]) == "confirmed"

        # The session's log has each tool call, the transcript and the summary with its cost.
        with Client(server.url) as client:
            events = client.session_events(document["session_id"])
        tool_events = [e.payload for e in events if e.type == "tool_call"]
        assert [p["name"] for p in tool_events] == [c["name"] for c in calls]
        assert {p["status"] for p in tool_events} == {"completed"}
        assert [p["id"] for p in tool_events] == [c["call_id"] for c in calls]
        lines = [(e.payload["role"], e.payload["text"]) for e in events if e.type == "transcript"]
        assert ("user", BOOK) in lines
        assert lines[0][0] == "agent"  # the greeting came first
        (summary,) = [e.payload for e in events if e.type == "summary"]
        assert [a["id"] for a in summary["booked_appointments"]] == [booked["id"]]
        assert summary["cost"]["total"] > 0
        assert summary["cost"]["usage"]["llm_input_tokens"] > 0
        assert summary["cost"]["usage"]["llm_model"] == "scripted-model"
        assert "Booked the first free slot." in summary["summary"]
        assert events[-1].type == "session_closed"
        assert document["summary"]["session_id"] == document["session_id"]


def test_every_model_request_keeps_the_prefix_and_ends_with_the_clock(
    scripted: Any, tmp_path: Path
) -> None:
    """The instructions and tools are the same bytes on every request (the provider's prompt
    cache holds them); the business-zone clock is the last message and never in history."""
    scripted.model.add(BOOKING_RULES)
    with running_server(
        {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db"}, tmp_path
    ) as server:
        done = voicebook(
            "call", "--text", "--json", "--url", server.url, "--say", IDENTIFY, "--say", ASK,
            env=clean_env(scripted.env()),
            cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    requests = scripted.model.requests
    assert len(requests) == 4  # two turns, each a tool call and an answer
    first = requests[0]["messages"][0]
    assert first["role"] in ("system", "developer")
    assert "receptionist" in first["content"]
    assert "chatting in text" in first["content"]  # the text variant, not the phone one
    assert "phone call" not in first["content"]
    for request in requests:
        assert request["messages"][0] == first
        assert request["tools"] == requests[0]["tools"]
        last = request["messages"][-1]
        assert last["role"] == "system"
        assert last["content"].startswith("Now: ")
        assert "(America/New_York)" in last["content"]
        clocks = [m for m in request["messages"] if str(m.get("content", "")).startswith("Now: ")]
        assert len(clocks) == 1
    assert [tool["function"]["name"] for tool in requests[0]["tools"]] == list(TOOL_NAMES)


def test_call_text_reads_the_caller_from_stdin_and_runs_the_server_itself(
    scripted: Any, tmp_path: Path
) -> None:
    """No --url, no VOICEBOOK_URL: the server runs in the command's process on the embedded
    SQLite file (a fresh machine with only an LLM key)."""
    scripted.model.add(BOOKING_RULES)
    env = clean_env({**scripted.env(), "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/e.db"})
    done = voicebook(
        "call", "--text", env=env, cwd=tmp_path, stdin=f"{IDENTIFY}\n\n{ASK}\n{BOOK}\n{BYE}\n"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "server in this process at http://127.0.0.1:" in out
    assert "⚙ identify_user" in out
    assert "⚙ book_appointment" in out
    assert "→ ok" in out
    assert "agent> Goodbye, Ada!" in out
    assert "booked in this session" in out
    with sqlite3.connect(tmp_path / "e.db") as db:
        assert db.execute("SELECT count(*) FROM appointments").fetchone() == (1,)


def test_call_text_shows_the_greeting_before_the_agent_loads(scripted: Any, tmp_path: Path) -> None:
    """The caller reads the greeting while livekit-agents loads (seconds on a cold start):
    with Python's import log on the same pipe, the greeting comes before any of its modules,
    and it is shown once."""
    scripted.model.add(BOOKING_RULES)
    env = clean_env(
        {**scripted.env(), "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/g.db"},
        PYTHONPROFILEIMPORTTIME="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "voicebook", "call", "--text", "--say", BYE],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the order of the two is the order of events
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    out = done.stdout
    assert out.count(DEFAULT_GREETING) == 1, out[-3000:]
    assert out.index(DEFAULT_GREETING) < out.index("livekit.agents")


def test_call_text_when_the_model_cannot_be_reached(tmp_path: Path) -> None:
    """The caller hears the apology, the command exits 1, and the session is still ended and
    summarised on the server."""
    dead_llm = f"http://127.0.0.1:{free_port()}/v1"
    with running_server(
        {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db"}, tmp_path
    ) as server:
        done = voicebook(
            "call", "--text", "--json", "--url", server.url, "--say", IDENTIFY, "--say", ASK,
            env=clean_env({"OPENAI_API_BASE": dead_llm, "OPENAI_API_KEY": "x"}),
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        document = json.loads(done.stdout)
        (turn,) = document["turns"][1:]  # the second line is never sent after a failure
        assert "LLM failed" in turn["error"]
        assert "technical trouble" in turn["agent"][0]
        assert document["summary"] is not None
        with Client(server.url) as client:
            view = client.get_session(document["session_id"])
        assert view.state == "ended"
        assert view.summary is not None


def test_call_text_interactive_in_a_terminal(scripted: Any, tmp_path: Path) -> None:
    """On a terminal: a prompt, each tool call shown as it completes, the call ended by the
    model's end_conversation, then the summary."""
    scripted.model.add(BOOKING_RULES)
    env = clean_env({**scripted.env(), "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    with Terminal("call", "--text", env=env, cwd=tmp_path) as terminal:
        terminal.read_until(b"you> ")
        for line in (IDENTIFY, ASK, BOOK):
            mark = terminal.type(line + "\n")
            terminal.read_until(b"agent> ", mark)
            terminal.read_until(b"you> ", mark)
        mark = terminal.type(BYE + "\n")
        terminal.read_until(b"booked in this session", mark)
        assert terminal.wait() == 0
    text = terminal.text
    assert "Type to talk" in text
    assert "⚙ identify_user" in text
    assert "⚙ book_appointment" in text
    assert "Goodbye, Ada!" in text
    assert "⚙ end_conversation" in text.split(BYE, 1)[1]


def test_ctrl_d_hangs_up_and_the_call_is_still_summarised(scripted: Any, tmp_path: Path) -> None:
    scripted.model.add(BOOKING_RULES)
    env = clean_env({**scripted.env(), "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    with Terminal("call", "--text", env=env, cwd=tmp_path) as terminal:
        terminal.read_until(b"you> ")
        mark = terminal.type(IDENTIFY + "\n")
        terminal.read_until(b"you> ", mark)
        terminal.type("\x04")  # Ctrl-D at the prompt
        assert terminal.wait() == 0, terminal.text
    assert "⚙ identify_user" in terminal.text
    assert "summary" in terminal.text
    assert "made no changes" in terminal.text
