"""The command line a developer trusts (issue 13): session ids that start with '-', one JSON error
document for every failure with `--json`, messages that name the fix, validated options, log
lines by who reads them, the shared tool options, and commands imported only when they run.

Real subprocesses (`python -m voicebook`) against a real `voicebook serve`, except where noted.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands import Outcome, voicebook
from servers import Server, clean_env, free_port, keyed_server, running_server

API_KEY = "polish-key"
UNREACHABLE = "http://127.0.0.1:1"
TOOLS = (
    "identify_user",
    "verify_caller",
    "fetch_slots",
    "book_appointment",
    "retrieve_appointments",
    "cancel_appointment",
    "modify_appointment",
    "end_conversation",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with keyed_server(tmp_path_factory, "cli-polish", API_KEY) as running:
        yield running


def remote(server: Server, *args: str, cwd: Path) -> Outcome:
    return voicebook(*args, cwd=cwd, VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)


def error_document(outcome: Outcome) -> dict[str, Any]:
    """stdout as the one `--json` error document: {"error": {code, message, ...}}, nothing else."""
    document = outcome.json()
    assert set(document) >= {"error"}, document
    error = document["error"]
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z_]+", error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    return error


# --- session ids that start with '-' --------------------------------------------------------------


def dash_session(server: Server) -> str:
    """A real session id that starts with '-' (one in 64 does): sessions are started until one
    does, a thousand at most (all of them failing would happen about once in seven million)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(1000):
            session_id = http.post("/session/start", json={}).json()["session_id"]
            if session_id.startswith("-"):
                return session_id
    raise AssertionError("no session id started with '-' in 1000 sessions")


def test_a_session_id_that_starts_with_a_dash_works_in_every_form(
    server: Server, tmp_path: Path
) -> None:
    session = dash_session(server)
    forms = [
        ("session", "show", "--session", session, "--json"),
        ("session", "show", f"--session={session}", "--json"),
        ("session", "show", "--json", "--", session),
        ("session", "events", "--json", "--", session),
        ("session", "events", f"--session={session}", "--json"),
        ("tool", "identify_user", "--session", session, "--phone", "+1 415 555 0188", "--json"),
        ("tool", "fetch_slots", f"--session={session}", "--limit", "1", "--json"),
        ("tool", "retrieve_appointments", "--session", session, "--json"),
    ]
    for args in forms:
        outcome = remote(server, *args, cwd=tmp_path)
        assert outcome.code == 0, (args, outcome)
        json.loads(outcome.stdout)
    assert (
        remote(server, "session", "show", "--json", "--", session, cwd=tmp_path).json()[
            "session_id"
        ]
        == session
    )

    ended = remote(server, "session", "end", "--json", "--", session, cwd=tmp_path)
    assert ended.code == 0, ended
    shown = remote(server, "session", "show", "--session", session, "--json", cwd=tmp_path)
    assert shown.json()["state"] == "ended"


def test_a_dash_id_given_bare_says_how_to_give_it(server: Server, tmp_path: Path) -> None:
    session = dash_session(server)
    outcome = remote(server, "session", "show", session, cwd=tmp_path)
    assert outcome.code == 2, outcome
    assert "`--`" in outcome.stderr and "--session=" in outcome.stderr, outcome.stderr
    assert outcome.stdout == ""


# --- one JSON error document, whatever failed -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("slots", "--frob", "--json"), "unknown_option"),
        (("tool", "fetch_slots", "--json"), "missing_value"),
        (("tool", "fetch_slots", "--json", "--session"), "invalid_option"),
        (("slots", "--limit", "many", "--json"), "invalid_value"),
        (("slots", "--date", "tomorrow", "--json"), "invalid_value"),
        (("tool", "no_such_tool", "--json"), "usage_error"),
        (("session", "show", "a", "b", "--json"), "usage_error"),
        (("db", "prune", "--days", "0", "--json"), "invalid_value"),
    ],
)
def test_usage_errors_are_a_json_document_with_json(
    args: tuple[str, ...], code: str, tmp_path: Path
) -> None:
    outcome = voicebook(*args, cwd=tmp_path)
    assert outcome.code == 2, outcome
    error = error_document(outcome)
    assert error["code"] == code, error
    assert "--help" in error["message"]  # where the options are listed
    assert "Traceback" not in outcome.stderr


def test_usage_errors_without_json_are_one_line_on_stderr(tmp_path: Path) -> None:
    outcome = voicebook("slots", "--frob", cwd=tmp_path)
    assert outcome.code == 2, outcome
    assert outcome.stdout == ""
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
    assert "--frob" in outcome.stderr and "voicebook slots --help" in outcome.stderr


def test_a_bad_env_file_value_is_a_json_configuration_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VOICEBOOK_HOURS=whenever we feel like it\n")
    outcome = voicebook("slots", "--json", cwd=tmp_path)
    assert outcome.code == 2, outcome
    error = error_document(outcome)
    assert error["code"] == "invalid_configuration"
    assert any(problem.startswith("VOICEBOOK_HOURS") for problem in error["problems"]), error


def test_a_bad_business_file_is_a_json_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "voicebook.toml").write_text('timezone = "UTC"\nhorizon_days = "many"\n')
    for args in (("slots", "--json"), ("db", "status", "--json"), ("config", "check", "--json")):
        outcome = voicebook(*args, cwd=tmp_path)
        assert outcome.code == 2, (args, outcome)
        error = error_document(outcome)
        assert error["code"] == "invalid_configuration", error
        assert any("voicebook.toml:2" in problem for problem in error["problems"]), error


def test_an_unreachable_server_or_database_is_a_json_error(tmp_path: Path) -> None:
    down = voicebook(
        "session", "show", "--session", "s", "--json", "--url", UNREACHABLE, cwd=tmp_path
    )
    assert down.code == 3, down
    assert error_document(down)["code"] == "connection_failed"

    database = "postgresql://root@127.0.0.1:1/x"
    for args in (("db", "status"), ("db", "migrate"), ("slots",)):
        outcome = voicebook(*args, "--json", "--database-url", database, cwd=tmp_path)
        assert outcome.code == 3, (args, outcome)
        assert error_document(outcome)["code"] == "database_unreachable"


def test_agent_commands_fail_in_json_too(tmp_path: Path) -> None:
    """`call --text` without an LLM key and `eval` of a missing file: configuration errors."""
    call = voicebook("call", "--text", "--json", "--say", "hi", cwd=tmp_path)
    assert call.code == 2, call
    assert error_document(call)["code"] == "invalid_configuration"
    scenarios = voicebook(
        "eval", str(tmp_path / "missing.eval.yaml"), "--json", cwd=tmp_path, OPENAI_API_KEY="x"
    )
    assert scenarios.code == 2, scenarios
    assert error_document(scenarios)["code"] == "invalid_scenarios"


def test_db_commands_speak_json(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    migrated = voicebook("db", "migrate", "--json", "--database-url", database, cwd=tmp_path).json()
    assert migrated["applied"] and migrated["applied"][0]["version"] == 1
    again = voicebook("db", "migrate", "--json", "--database-url", database, cwd=tmp_path).json()
    assert again["applied"] == []
    status = voicebook("db", "status", "--json", "--database-url", database, cwd=tmp_path).json()
    assert [m["version"] for m in status["applied"]] == [m["version"] for m in migrated["applied"]]
    assert status["pending"] == []
    schema = voicebook("db", "schema", "--json", cwd=tmp_path).json()
    assert "create table" in schema["schema"].lower()


# --- whole ids, whatever the width ---------------------------------------------------------------


@pytest.mark.parametrize("columns", ["40", "60", "80", "200"])
def test_slots_prints_every_id_whole_whatever_the_width(columns: str, tmp_path: Path) -> None:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "COLUMNS": columns}
    env["VOICEBOOK_HOURS"] = "mon-sun 00:00-24:00"
    ids = [s["slot_id"] for s in voicebook("slots", "--json", cwd=tmp_path, **env).json()["slots"]]
    table = voicebook("slots", cwd=tmp_path, **env)  # piped: not a terminal
    assert table.code == 0, table
    assert ids and all(slot_id in table.stdout for slot_id in ids), table.stdout


# --- messages that name the fix -------------------------------------------------------------------


def test_domain_errors_name_the_fix_not_the_callers_words(server: Server, tmp_path: Path) -> None:
    session = remote(server, "session", "start", "--json", cwd=tmp_path).json()["session_id"]
    phone = remote(
        server,
        "tool",
        "identify_user",
        "--session",
        session,
        "--phone",
        "12",
        "--json",
        cwd=tmp_path,
    )
    assert phone.code == 1, phone
    error = error_document(phone)
    assert error["code"] == "invalid_phone"
    assert "--phone" in error["message"] and "digit by digit" not in error["message"]
    assert "digit by digit" not in phone.stderr

    anonymous = remote(server, "tool", "retrieve_appointments", "--session", session, cwd=tmp_path)
    assert anonymous.code == 1, anonymous
    assert "voicebook tool identify_user" in anonymous.stderr  # the command that fixes it
    assert "I need your phone number" not in anonymous.stderr


# --- validated options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("serve", "--log-level", "loud"), ("debug", "info", "warning", "error")),
        (("serve", "--log-format", "fancy"), ("auto", "plain", "json")),
        (("agent", "start", "--log-level", "loud"), ("debug", "info", "warning", "error")),
        (("agent", "dev", "--log-format", "fancy"), ("auto", "plain", "json")),
        (("slots", "--part-of-day", "noon"), ("morning", "afternoon", "evening")),
        (("tool", "fetch_slots", "--session", "s", "--part-of-day", "noon"), ("morning",)),
    ],
)
def test_an_option_with_a_closed_set_names_the_allowed_values(
    args: tuple[str, ...], allowed: tuple[str, ...], tmp_path: Path
) -> None:
    outcome = voicebook(*args, cwd=tmp_path)
    assert outcome.code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr  # no banner, no traceback
    assert all(f"'{value}'" in lines[0] for value in allowed), lines[0]
    assert outcome.stdout == ""


# --- log lines by who reads them ------------------------------------------------------------------


@contextlib.contextmanager
def serve_on_a_terminal(tmp_path: Path, *args: str) -> Iterator[tuple[str, Any]]:
    """`voicebook serve` with stdout and stderr on a pseudo-terminal, listening; yields its URL
    and a function that reads the terminal until a line holds the given text."""
    port = free_port()
    controller, terminal = pty.openpty()
    env = clean_env(
        VOICEBOOK_DATABASE_URL=f"sqlite:///{tmp_path / 'tty.db'}", VOICEBOOK_API_KEY=API_KEY
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "voicebook", "serve", "--port", str(port), *args],
        stdout=terminal,
        stderr=terminal,
        env=env,
        cwd=tmp_path,
    )
    os.close(terminal)
    seen: list[str] = []
    pending = [""]

    def line_with(text: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            for line in seen:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            readable, _, _ = select.select([controller], [], [], max(left, 0))
            if not readable:
                raise AssertionError(f"no line with {text!r} in 30 s:\n" + "\n".join(seen))
            try:
                chunk = os.read(controller, 4096).decode(errors="replace")
            except OSError as exc:  # EIO: the server closed the terminal
                raise AssertionError("the server exited:\n" + "\n".join(seen)) from exc
            *complete, pending[0] = (pending[0] + chunk).split("\n")
            seen.extend(line.rstrip("\r") for line in complete)

    url = f"http://127.0.0.1:{port}"
    try:
        line_with("voicebook serving on")
        yield url, line_with
    finally:
        process.terminate()
        process.wait(timeout=15)
        os.close(controller)


def access(url: str, line_with: Any, path: str) -> str:
    """GET `path` until the server answers, and its access line."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + path, timeout=5)
            break
        except httpx.HTTPError:  # not listening yet: polling for the condition
            if time.monotonic() > deadline:
                raise
    return line_with(f"GET {path.split('?')[0][:15]}")


def test_server_logs_are_plain_lines_on_a_terminal(tmp_path: Path) -> None:
    with serve_on_a_terminal(tmp_path) as (url, line_with):
        access(url, line_with, "/healthz")
        session = httpx.post(f"{url}/session/start", json={}).json()["session_id"]
        httpx.get(f"{url}/session/{session}", timeout=5)
        line = line_with(f"GET /session/{session[:6]}")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert session not in line  # the credential shortened, as in the JSON lines
    assert " INFO " in line, line


def test_serve_json_forces_json_lines_on_a_terminal(tmp_path: Path) -> None:
    with serve_on_a_terminal(tmp_path, "--json") as (url, line_with):
        entry = json.loads(access(url, line_with, "/healthz"))
        assert entry["level"] == "info" and "/healthz" in entry["message"]
        banner = json.loads(line_with("voicebook serving on"))
        assert banner["logger"] == "voicebook.serve"


def test_server_logs_are_json_when_not_a_terminal_or_plain_when_forced(tmp_path: Path) -> None:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'json.db'}"}
    with running_server(env, tmp_path) as running:
        httpx.get(f"{running.url}/healthz", timeout=5)
        entries = [json.loads(x) for x in running.log().splitlines() if x.startswith("{")]
        assert any("/healthz" in entry["message"] for entry in entries), running.log()
    with running_server(env, tmp_path, args=("--log-format", "plain")) as running:
        httpx.get(f"{running.url}/healthz", timeout=5)
        line = next(x for x in running.log().splitlines() if "GET /healthz" in x)
        assert not line.startswith("{") and " INFO " in line, line


def test_every_worker_logs_as_the_server_does(tmp_path: Path) -> None:
    """`--workers 2`: the workers uvicorn spawns get the same logging (they used to get none,
    so their access lines were lost), as JSON lines with the phone masked."""
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}"}
    with running_server(env, tmp_path, args=("--workers", "2")) as running:
        deadline = time.monotonic() + 30
        while True:
            httpx.get(f"{running.url}/healthz?caller=4155550123", timeout=5)
            lines = [x for x in running.log().splitlines() if "GET /healthz?caller" in x]
            if lines:
                break
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.1)
        entry = json.loads(lines[0])
        assert entry["logger"] == "uvicorn.access"
        assert "4155550123" not in entry["message"] and "***0123" in entry["message"]


# --- the shared tool options ----------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_takes_the_shared_options(tool: str, tmp_path: Path) -> None:
    shown = voicebook("tool", tool, "--help", cwd=tmp_path, COLUMNS="200")
    assert shown.code == 0, shown
    for option in ("--session", "--json", "--idempotency-key", "--url", "--api-key"):
        assert option in shown.stdout, (tool, option)


def test_the_shared_options_reach_the_call(server: Server, tmp_path: Path) -> None:
    """--idempotency-key, --url and --api-key given as options (no environment) do their job:
    the same key twice is one booking."""
    session = voicebook(
        "session", "start", "--json", "--url", server.url, "--api-key", API_KEY, cwd=tmp_path
    ).json()["session_id"]
    common = ("--session", session, "--url", server.url, "--api-key", API_KEY, "--json")
    voicebook("tool", "identify_user", *common, "--phone", "+1 415 555 0199", cwd=tmp_path)
    slot = voicebook("tool", "fetch_slots", *common, cwd=tmp_path).json()["slots"][0]["slot_id"]
    booking = ("tool", "book_appointment", *common, "--slot", slot, "--idempotency-key", "once")
    first = voicebook(*booking, cwd=tmp_path)
    second = voicebook(*booking, cwd=tmp_path)
    assert first.code == second.code == 0, (first, second)
    assert first.json()["appointment"]["id"] == second.json()["appointment"]["id"]


# --- commands imported when they run --------------------------------------------------------------

PROBE = """
import json, sys
sys.argv = ["voicebook", *json.loads(sys.argv[1])]
from voicebook.cli.app import main
try:
    main()
except SystemExit:
    pass
print("PROBE " + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

COMMAND_MODULES = {
    f"voicebook.cli.{name}"
    for name in (
        "agent",
        "appointments",
        "call",
        "config_check",
        "db",
        "evaluate",
        "init",
        "remote",
        "serve",
        "session",
        "slots",
        "token",
        "tool",
    )
}
HELP_EXTRAS = {"rich.markdown", "markdown_it", "pygments", "rich.syntax", "rich.traceback"}


def loaded(args: list[str], cwd: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(COLUMNS="100"),
        cwd=cwd,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE "))
    return set(json.loads(line.removeprefix("PROBE ")))


def test_version_imports_no_command_and_no_rich(tmp_path: Path) -> None:
    modules = loaded(["--version"], tmp_path)
    assert not modules & COMMAND_MODULES, modules & COMMAND_MODULES
    assert not {m for m in modules if m.split(".")[0] == "rich"}


def test_help_imports_no_command_and_no_rich(tmp_path: Path) -> None:
    """click's plain help: neither the command modules nor Rich (cli/lazy.py says why)."""
    modules = loaded(["--help"], tmp_path)
    assert not modules & COMMAND_MODULES, modules & COMMAND_MODULES
    assert not {m for m in modules if m.split(".")[0] == "rich"}


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    modules = loaded(["tool", "fetch_slots", "--help"], tmp_path)
    assert "voicebook.cli.tool" in modules
    assert not modules & (COMMAND_MODULES - {"voicebook.cli.tool", "voicebook.cli.remote"})
    assert not modules & HELP_EXTRAS, modules & HELP_EXTRAS


def test_the_listed_help_is_each_commands_own() -> None:
    """`voicebook --help` shows lines from cli/app.py without importing the commands: each is
    the command's own help, so the two cannot drift apart."""
    import typer

    from voicebook.cli.lazy import LazyGroup

    root = typer.main.get_command(__import__("voicebook.cli.app", fromlist=["app"]).app)
    context = typer.Context(root)
    for name, lazy in LazyGroup.commands_to_load.items():
        command = lazy.load(name)
        own = " ".join((command.help or "").split("\n\n")[0].split())
        assert lazy.help == own, name
        assert root.get_command(context, name).name == name


def leaf_commands() -> list[list[str]]:
    """Every command `voicebook` runs, as its words (`["tool", "fetch_slots"]`)."""
    import typer

    from voicebook.cli.app import app

    root = typer.main.get_command(app)

    def walk(command: Any, words: list[str], context: Any) -> list[list[str]]:
        names = command.list_commands(context) if hasattr(command, "list_commands") else None
        if names is None:
            return [words]
        found: list[list[str]] = []
        for name in names:
            sub = command.get_command(context, name)
            found.extend(walk(sub, [*words, name], typer.Context(sub, parent=context)))
        return found

    return walk(root, [], typer.Context(root))


@pytest.mark.parametrize("words", leaf_commands(), ids=" ".join)
def test_every_command_takes_json(words: list[str]) -> None:
    from typer.testing import CliRunner

    from voicebook.cli.app import app

    shown = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "--json" in shown.output, words


def test_a_group_named_alone_lists_its_commands_whole(tmp_path: Path) -> None:
    """`voicebook tool` answers with the tool list on stdout (a usage error, exit 2), each
    command's whole first paragraph wrapped at the width, never cut with '...'."""
    from voicebook.models import TOOL_NAMES

    shown = voicebook("tool", cwd=tmp_path, COLUMNS="80")
    assert shown.code == 2, shown
    commands = shown.stdout.split("Commands:\n", 1)[1]
    listed = re.findall(r"^  (\w+) ", commands, re.MULTILINE)
    assert listed == list(TOOL_NAMES), shown.stdout
    assert "..." not in commands
    assert "check the code (--code) they read back." in " ".join(shown.stdout.split())
