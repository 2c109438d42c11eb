"""`voicebook session …` and `voicebook tool …` against a real `voicebook serve`.

Every flow runs twice: in-process through Typer's CliRunner (server and key given as --url /
--api-key) and as a real subprocess (server and key from VOICEBOOK_URL / VOICEBOOK_API_KEY).

Exit codes: 0 ok, 1 a domain error (its sentence on stderr), 2 a usage error (or a wrong service
key), 3 the server cannot be reached (the message names the URL).
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands import Invoke, Outcome
from servers import Server, clean_env, keyed_server
from voicebook.cli.app import app
from voicebook.models import (
    Event,
    FetchSlotsResponse,
    RetrieveAppointmentsResponse,
    SessionView,
    StartSessionResponse,
)

API_KEY = "k"
UNREACHABLE = "http://127.0.0.1:1"
HEAVY = ("fastapi", "uvicorn", "starlette", "psycopg", "aiosqlite", "livekit", "redis")
_phones = itertools.count(2000)


def phone() -> str:
    return f"+1 415 555 {next(_phones):04d}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with keyed_server(tmp_path_factory, "cli-remote", API_KEY) as running:
        yield running


def run_subprocess(*args: str, env: dict[str, str], cwd: Path) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def run_in_process(*args: str, env: dict[str, str | None] | None = None) -> Outcome:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(params=["runner", "subprocess"])
def cli(request: pytest.FixtureRequest, server: Server, tmp_path: Path) -> Invoke:
    """`voicebook ARGS` against the server: in-process with --url/--api-key appended after the
    command's own arguments, or as a subprocess with VOICEBOOK_URL / VOICEBOOK_API_KEY set."""
    if request.param == "runner":
        unset: dict[str, str | None] = {
            "VOICEBOOK_URL": None,
            "BACKEND_BASE_URL": None,
            "VOICEBOOK_API_KEY": None,
        }

        def invoke(*args: str) -> Outcome:
            extra = [] if "--url" in args else ["--url", server.url]
            return run_in_process(*args, *extra, "--api-key", API_KEY, env=unset)

        return invoke
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    return lambda *args: run_subprocess(*args, env=env, cwd=tmp_path)


def start(cli: Invoke) -> str:
    started = cli("session", "start", "--json")
    assert started.code == 0, started
    return StartSessionResponse.model_validate(started.json()).session_id


def identified(cli: Invoke, name: str = "Ana") -> str:
    session = start(cli)
    outcome = cli("tool", "identify_user", "--session", session, "--phone", phone(), "--name", name)
    assert outcome.code == 0, outcome
    return session


def trusted(cli: Invoke, name: str = "Ana") -> str:
    """A session a back-end started for its signed-in caller (the service key): trusted."""
    started = cli("session", "start", "--phone", phone(), "--name", name, "--json")
    assert started.code == 0, started
    answer = StartSessionResponse.model_validate(started.json())
    assert answer.identity_level == "trusted"
    return answer.session_id


def free_slots(cli: Invoke, session: str, *extra: str) -> FetchSlotsResponse:
    outcome = cli("tool", "fetch_slots", "--session", session, "--json", *extra)
    assert outcome.code == 0, outcome
    return FetchSlotsResponse.model_validate(outcome.json())


# --- the flow -------------------------------------------------------------------------------------


def test_a_call_from_start_to_end(cli: Invoke) -> None:
    session = start(cli)

    who = cli("tool", "identify_user", "--session", session, "--phone", phone(), "--name", "Ana")
    assert who.code == 0, who
    assert "identified" in who.text
    assert "(Ana)" in who.text
    assert "new caller" in who.text

    slots = free_slots(cli, session, "--limit", "3")
    assert len(slots.slots) == 3
    assert slots.timezone
    chosen = slots.slots[0]

    booked = cli("tool", "book_appointment", "--session", session, "--slot", chosen.slot_id)
    assert booked.code == 0, booked
    assert f"booked {chosen.label}" in booked.text

    listed = cli("tool", "retrieve_appointments", "--session", session, "--json")
    assert listed.code == 0, listed
    appointments = RetrieveAppointmentsResponse.model_validate(listed.json()).appointments
    assert [(a.start, a.status) for a in appointments] == [(chosen.start, "confirmed")]
    assert appointments[0].id in booked.text

    log = cli("session", "events", "--session", session)
    assert log.code == 0, log
    for tool in ("identify_user", "fetch_slots", "book_appointment", "retrieve_appointments"):
        assert f"tool_call {tool} completed" in log.text, log.text
    assert "state connected" in log.text

    ended = cli("session", "end", "--session", session)
    assert ended.code == 0, ended
    assert f"session {session} ended" in ended.text
    assert chosen.label in ended.text  # the summary names the booking
    assert "caller ***" in ended.text

    shown = cli("session", "show", "--session", session, "--json")
    assert shown.code == 0, shown
    view = SessionView.model_validate(shown.json())
    assert view.state == "ended"
    assert view.summary is not None
    assert view.user is not None
    assert view.user.phone_masked.startswith("***")

    again = cli("session", "end", "--session", session)  # idempotent
    assert again.code == 0, again


def test_readable_tables_and_show(cli: Invoke) -> None:
    session = identified(cli, name="Bo")
    slots = cli("tool", "fetch_slots", "--session", session, "--limit", "2")
    assert slots.code == 0, slots
    assert "free slots" in slots.text
    expected = free_slots(cli, session, "--limit", "2").slots
    for slot in expected:
        assert slot.slot_id in slots.stdout  # ids are never wrapped or cut: they get copied

    shown = cli("session", "show", "--session", session)
    assert shown.code == 0, shown
    assert "state active" in shown.text
    assert "(Bo)" in shown.text
    assert "***" in shown.text
    assert "+1 415" not in shown.text  # never the full phone


def test_every_tool_from_the_command_line(cli: Invoke) -> None:
    session = identified(cli)
    first, second, third = free_slots(cli, session, "--limit", "3").slots
    booked = cli(
        "tool",
        "book_appointment",
        "--session",
        session,
        "--slot",
        first.slot_id,
        "--notes",
        "first visit",
        "--json",
    )
    assert booked.code == 0, booked
    appointment = booked.json()["appointment"]
    assert appointment["notes"] == "first visit"

    moved = cli(
        "tool",
        "modify_appointment",
        "--session",
        session,
        "--appointment",
        appointment["id"],
        "--new-slot",
        second.slot_id,
    )
    assert moved.code == 0, moved
    assert f"moved {first.label} → {second.label}" in moved.text

    by_start = cli(
        "tool",
        "book_appointment",
        "--session",
        session,
        "--start",
        third.start.isoformat(),
        "--json",
    )
    assert by_start.code == 0, by_start
    third_id = by_start.json()["appointment"]["id"]

    cancelled = cli(
        "tool",
        "cancel_appointment",
        "--session",
        session,
        "--appointment",
        third_id,
        "--reason",
        "changed plans",
    )
    assert cancelled.code == 0, cancelled
    assert f"cancelled {third.label}" in cancelled.text

    everything = cli(
        "tool",
        "retrieve_appointments",
        "--session",
        session,
        "--include-cancelled",
        "--include-past",
    )
    assert everything.code == 0, everything
    for status in ("confirmed", "cancelled", "rescheduled"):
        assert status in everything.text

    ended = cli(
        "tool",
        "end_conversation",
        "--session",
        session,
        "--preference",
        "mornings",
        "--preference",
        "Dr. Lee",
        "--recap",
        "All set.",
    )
    assert ended.code == 0, ended
    assert "All set." in ended.text
    assert "mornings" in ended.text
    assert "Dr. Lee" in ended.text


def test_follow_prints_the_timeline_live_and_ends_with_the_session(
    server: Server, tmp_path: Path
) -> None:
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    session = json.loads(run_subprocess("session", "start", "--json", env=env, cwd=tmp_path).stdout)
    session_id = session["session_id"]
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicebook",
            "session",
            "events",
            "--session",
            session_id,
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()  # the replayed `status connected`: it is listening
        assert "state connected" in first, first
        for args in (
            ("tool", "identify_user", "--session", session_id, "--phone", phone()),
            ("tool", "fetch_slots", "--session", session_id, "--part-of-day", "afternoon"),
            ("session", "end", "--session", session_id),
        ):
            outcome = run_subprocess(*args, env=env, cwd=tmp_path)
            assert outcome.code == 0, outcome
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    timeline = " ".join((first + out).split())
    for expected in (
        "tool_call identify_user completed Identified",
        "tool_call fetch_slots completed",
        "state ended",
        "summary",
        "session_closed session closed",
    ):
        assert expected in timeline, timeline
    assert timeline.index("identify_user") < timeline.index("fetch_slots")
    assert timeline.index("fetch_slots") < timeline.index("session_closed")
    assert err == ""  # stderr is not a terminal: no spinner


def test_follow_json_is_one_event_per_line_and_resumes_after(cli: Invoke) -> None:
    session = identified(cli)
    ended = cli("session", "end", "--session", session)
    assert ended.code == 0, ended

    everything = cli("session", "events", "--session", session, "--json")
    assert everything.code == 0, everything
    log = [Event.model_validate(e) for e in everything.json()]
    assert [e.id for e in log] == list(range(1, len(log) + 1))
    assert log[-1].type == "session_closed"

    followed = cli("session", "events", "--session", session, "--follow", "--json", "--after", "2")
    assert followed.code == 0, followed
    lines = [Event.model_validate_json(line) for line in followed.stdout.splitlines()]
    assert [e.id for e in lines] == [e.id for e in log if e.id > 2]

    after = cli("session", "events", "--session", session, "--after", str(log[-1].id))
    assert after.code == 0, after
    assert "no events after" in after.text


def test_json_mode_prints_only_json_and_no_spinner(server: Server, tmp_path: Path) -> None:
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    session = run_subprocess("session", "start", "--json", env=env, cwd=tmp_path)
    assert session.code == 0, session
    session_id = session.json()["session_id"]
    assert session.stderr == ""
    slots = run_subprocess(
        "tool", "fetch_slots", "--session", session_id, "--json", env=env, cwd=tmp_path
    )
    assert slots.code == 0, slots
    FetchSlotsResponse.model_validate(slots.json())
    assert slots.stderr == ""


def pty_stderr(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run `voicebook ARGS` with stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "voicebook", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**env, "TERM": "xterm-256color"},
        cwd=cwd,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    process.wait(timeout=30)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_a_spinner_on_a_terminal_but_not_in_json_mode(server: Server, tmp_path: Path) -> None:
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    session = run_subprocess("session", "start", "--json", env=env, cwd=tmp_path).json()
    args = ["tool", "fetch_slots", "--session", session["session_id"]]

    code, stdout, stderr = pty_stderr(args, env, tmp_path)
    assert code == 0, stderr
    assert "fetch_slots on" in stderr  # the spinner's text, drawn on the terminal
    assert "free slots" in stdout  # the table itself went to stdout

    code, stdout, stderr = pty_stderr([*args, "--json"], env, tmp_path)
    assert code == 0, stderr
    assert stderr == ""
    FetchSlotsResponse.model_validate_json(stdout)


# --- exit codes -----------------------------------------------------------------------------------


def test_exit_1_slot_taken(cli: Invoke) -> None:
    session = identified(cli)
    slot = free_slots(cli, session, "--limit", "1").slots[0]
    first = cli("tool", "book_appointment", "--session", session, "--slot", slot.slot_id)
    assert first.code == 0, first

    other = identified(cli, name="Cy")
    taken = cli("tool", "book_appointment", "--session", other, "--slot", slot.slot_id)
    assert taken.code == 1, taken
    assert taken.stdout == ""
    assert "(slot_taken)" in taken.text
    assert "already taken" in taken.stderr
    assert "free instead:" in taken.stderr  # the alternatives, ready to use
    assert "--slot slot_" in taken.stderr

    as_json = cli("tool", "book_appointment", "--session", other, "--slot", slot.slot_id, "--json")
    assert as_json.code == 1, as_json
    error = as_json.json()["error"]
    assert error["code"] == "slot_taken"
    assert error["status"] == 409
    assert error["alternatives"]
    assert "already taken" in as_json.stderr


def test_exit_1_not_found(cli: Invoke) -> None:
    unknown = cli("session", "show", "no-such-session")
    assert unknown.code == 1, unknown
    assert "(not_found)" in unknown.text

    events = cli("session", "events", "no-such-session", "--follow")
    assert events.code == 1, events
    assert "(not_found)" in events.text

    session = trusted(cli)
    cancel = cli("tool", "cancel_appointment", "--session", session, "--appointment", "apt_nope")
    assert cancel.code == 1, cancel
    assert "(not_found)" in cancel.text
    assert cancel.stdout == ""


def test_exit_1_not_identified_and_invalid_phone(cli: Invoke) -> None:
    session = start(cli)
    slot = free_slots(cli, session, "--limit", "1").slots[0]
    anonymous = cli("tool", "book_appointment", "--session", session, "--slot", slot.slot_id)
    assert anonymous.code == 1, anonymous
    assert "(not_identified)" in anonymous.text

    bad_phone = cli("tool", "identify_user", "--session", session, "--phone", "12")
    assert bad_phone.code == 1, bad_phone
    assert "(invalid_phone)" in bad_phone.text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("tool", "fetch_slots"), "Missing option '--session'"),
        (("tool", "book_appointment", "--slot", "x"), "Missing option '--session'"),
        (("session", "attest", "s"), "Missing option '--phone'"),
        (("session", "start", "--name", "Ann"), "--name needs --phone"),
        (("tool", "fetch_slots", "--session", "s", "--bogus"), "No such option"),
        (("tool", "fetch_slots", "--session", "s", "--limit", "0"), "--limit"),
        (("tool", "fetch_slots", "--session", "s", "--date", "2027-13-01"), "YYYY-MM-DD"),
        (("tool", "fetch_slots", "--session", "s", "--part-of-day", "night"), "--part-of-day"),
        (("tool", "book_appointment", "--session", "s"), "give exactly one of them"),
        (
            (
                "tool",
                "book_appointment",
                "--session",
                "s",
                "--slot",
                "a",
                "--start",
                "2027-03-02T15:00",
            ),
            "give exactly one of them",
        ),
        (("tool", "book_appointment", "--session", "s", "--start", "tomorrow"), "ISO 8601"),
        (("tool", "modify_appointment", "--session", "s", "--appointment", "a"), "--new-slot"),
        (("tool", "no_such_tool", "--session", "s"), "No such command"),
        (("session", "show"), "the session id is missing"),
        (("session", "show", "a", "--session", "b"), "give the session id once"),
        (("session", "events", "s", "--after", "-1"), "--after"),
    ],
)
def test_exit_2_usage(cli: Invoke, args: tuple[str, ...], says: str) -> None:
    outcome = cli(*args)
    assert outcome.code == 2, outcome
    assert says in outcome.text, outcome.text
    assert outcome.stdout == ""


def test_exit_2_wrong_service_key_or_url(server: Server, tmp_path: Path) -> None:
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY="wrong")
    session = run_subprocess("session", "start", "--json", env=env, cwd=tmp_path).json()
    wrong = run_subprocess(
        "tool", "fetch_slots", "--session", session["session_id"], env=env, cwd=tmp_path
    )
    assert wrong.code == 2, wrong
    assert "--api-key" in wrong.text
    assert "VOICEBOOK_API_KEY" in wrong.text
    assert "wrong" not in wrong.text  # the key is never echoed

    bad_url = run_in_process("session", "show", "s", "--url", "ftp://example.com")
    assert bad_url.code == 2, bad_url
    assert "http://" in bad_url.text


@pytest.mark.parametrize(
    "args",
    [
        ("session", "start"),
        ("session", "show", "s"),
        ("session", "end", "s"),
        ("session", "events", "s"),
        ("session", "events", "s", "--follow"),
        ("tool", "fetch_slots", "--session", "s"),
        ("tool", "identify_user", "--session", "s", "--phone", "4155550123"),
    ],
)
def test_exit_3_unreachable_names_the_url(cli: Invoke, args: tuple[str, ...]) -> None:
    started = time.monotonic()
    outcome = cli(*args, "--url", UNREACHABLE)
    assert outcome.code == 3, outcome
    assert f"cannot reach the voicebook server at {UNREACHABLE}" in outcome.text
    assert outcome.stdout == ""
    assert time.monotonic() - started < 30  # a few quick retries, not the SDK's 30 s budget


def test_exit_3_in_json_mode_is_a_json_error(tmp_path: Path) -> None:
    outcome = run_subprocess(
        "tool",
        "fetch_slots",
        "--session",
        "s",
        "--json",
        env=clean_env(VOICEBOOK_URL=UNREACHABLE),
        cwd=tmp_path,
    )
    assert outcome.code == 3, outcome
    error = outcome.json()["error"]
    assert error["code"] == "connection_failed"
    assert error["url"] == UNREACHABLE
    assert UNREACHABLE in outcome.stderr


def test_the_url_comes_from_the_environment(tmp_path: Path) -> None:
    for variable in ("VOICEBOOK_URL", "BACKEND_BASE_URL"):
        outcome = run_subprocess(
            "session", "start", env=clean_env(**{variable: UNREACHABLE}), cwd=tmp_path
        )
        assert outcome.code == 3, outcome
        assert UNREACHABLE in outcome.text


# --- import weight --------------------------------------------------------------------------------

PROBE = """
import json, sys
args, heavy_roots = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["voicebook", *args]
from voicebook.cli.app import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in heavy_roots)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["tool", "--help"],
        ["tool", "fetch_slots", "--help"],
        ["session", "--help"],
        ["session", "events", "--help"],
    ],
)
def test_help_imports_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    result = probe(args, clean_env(), tmp_path)
    assert result["code"] == 0
    assert result["heavy"] == [], f"`voicebook {' '.join(args)}` imported {result['heavy']}"


def test_a_tool_call_imports_nothing_heavy(server: Server, tmp_path: Path) -> None:
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    session = run_subprocess("session", "start", "--json", env=env, cwd=tmp_path).json()
    result = probe(
        ["tool", "fetch_slots", "--session", session["session_id"], "--json"], env, tmp_path
    )
    assert result["code"] == 0
    assert result["heavy"] == [], result["heavy"]
