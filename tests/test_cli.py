"""The `voicebook` command line, in-process (typer's CliRunner) and as a real subprocess.

Exit codes: 0 ok, 1 domain error, 2 usage/config error, 3 database unreachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

import voicebook
from commands import Invoke, Outcome
from voicebook.cli.app import app
from voicebook.models import FetchSlotsResponse
from voicebook.scheduling.availability import day_label

REPO_ROOT = Path(__file__).resolve().parents[1]
SUPABASE_SCHEMA = REPO_ROOT / "supabase_schema.sql"
ZONE = "Asia/Kolkata"  # a half-hour offset, so a slot in the wrong zone cannot pass by accident
UNREACHABLE_URL = "postgresql://root@127.0.0.1:1/x"


def run_in_process(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def run_subprocess(*args: str) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.getcwd(),
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture(params=["runner", "subprocess"])
def voicebook_cli(request: pytest.FixtureRequest, env: Path) -> Invoke:
    """Run `voicebook ARGS` either way; both see the same (monkeypatched) environment."""
    return run_in_process if request.param == "runner" else run_subprocess


@pytest.fixture
def env(tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The isolated environment plus a tmp SQLite database and round-the-clock hours."""
    monkeypatch.setenv("VOICEBOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'voicebook.db'}")
    monkeypatch.setenv("VOICEBOOK_TIMEZONE", ZONE)
    monkeypatch.setenv("VOICEBOOK_HOURS", "mon-sun 00:00-24:00")
    return tmp_path


def expected_label(start: datetime, zone: ZoneInfo) -> str:
    local = start.astimezone(zone)
    hour = local.hour % 12 or 12
    return (
        f"{local:%A}, {local:%B} {local.day} at {hour}:{local:%M} "
        f"{'AM' if local.hour < 12 else 'PM'}"
    )


# --- basics ---------------------------------------------------------------------------------------


def test_version(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("--version")
    assert outcome.code == 0, outcome
    assert outcome.stdout.strip() == f"voicebook {voicebook.__version__}"


def test_help_lists_the_commands(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("--help")
    assert outcome.code == 0, outcome
    for command in ("db", "slots"):
        assert command in outcome.stdout


def test_db_migrate_then_status(voicebook_cli: Invoke, env: Path) -> None:
    migrate = voicebook_cli("db", "migrate")
    assert migrate.code == 0, migrate
    assert "applied 0001 initial" in migrate.text
    assert "is up to date" in migrate.text
    assert (env / "voicebook.db").exists()

    again = voicebook_cli("db", "migrate")
    assert again.code == 0, again
    assert "applied 0" not in again.text

    status = voicebook_cli("db", "status")
    assert status.code == 0, status
    assert "│ 0001 │ initial │ applied" in status.text
    assert "│ pending" not in status.text


def test_db_schema_prints_supabase_schema_sql(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("db", "schema")
    assert outcome.code == 0, outcome
    assert outcome.stdout == SUPABASE_SCHEMA.read_text(encoding="utf-8")


# --- slots ----------------------------------------------------------------------------------------


def test_slots_json_in_the_business_zone(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("slots", "--json", "--limit", "5")
    assert outcome.code == 0, outcome
    result = FetchSlotsResponse.model_validate_json(outcome.stdout)
    assert result.timezone == ZONE
    assert len(result.slots) == 5
    zone = ZoneInfo(ZONE)
    now = datetime.now(zone)
    for slot in result.slots:
        assert slot.start.utcoffset() == timedelta(hours=5, minutes=30), slot
        assert slot.end.utcoffset() == timedelta(hours=5, minutes=30), slot
        assert slot.end - slot.start == timedelta(minutes=30)
        assert slot.start > now
        assert slot.label == expected_label(slot.start, zone)
    starts = [slot.start for slot in result.slots]
    assert starts == sorted(starts)
    assert len({slot.slot_id for slot in result.slots}) == len(result.slots)


def test_slots_table(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("slots", "--limit", "2")
    assert outcome.code == 0, outcome
    assert f"free slots ({ZONE})" in outcome.text
    assert "slot_" in outcome.text


def test_slots_on_a_closed_date_is_a_domain_error(
    voicebook_cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=3)
    other = closed + timedelta(days=7)
    monkeypatch.setenv("VOICEBOOK_CLOSED_DATES", f"{other.isoformat()},{closed.isoformat()}")
    outcome = voicebook_cli("slots", "--date", closed.isoformat())
    assert outcome.code == 1, outcome
    assert f"We're closed on {day_label(closed)}." in outcome.text
    assert "Traceback" not in outcome.text

    open_day = voicebook_cli("slots", "--json", "--date", (closed + timedelta(days=1)).isoformat())
    assert open_day.code == 0, open_day
    assert FetchSlotsResponse.model_validate_json(open_day.stdout).slots


def test_malformed_hours_is_a_configuration_error(
    voicebook_cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOOK_HOURS", "every day, all the time")
    outcome = voicebook_cli("slots")
    assert outcome.code == 2, outcome
    assert "VOICEBOOK_HOURS" in outcome.text
    assert "Traceback" not in outcome.text


def test_date_that_is_not_a_date_is_a_usage_error(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("slots", "--date", "notadate")
    assert outcome.code == 2, outcome
    assert "notadate" in outcome.text
    assert "YYYY-MM-DD" in outcome.text


# --- Supabase and unreachable databases -----------------------------------------------------------


def test_supabase_url_alone_says_where_the_connection_string_is(
    voicebook_cli: Invoke, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICEBOOK_DATABASE_URL")
    monkeypatch.setenv("SUPABASE_URL", "https://abcdefgh.supabase.co")
    monkeypatch.setenv("SUPABASE_KEY", "sb-secret-key-do-not-echo")
    outcome = voicebook_cli("db", "migrate")
    assert outcome.code == 2, outcome
    assert "VOICEBOOK_DATABASE_URL" in outcome.text
    assert "Connect" in outcome.text
    assert "Transaction pooler" in outcome.text
    assert "sb-secret-key-do-not-echo" not in outcome.text
    # Nothing was created under the (throwaway) user data dir: no silent local fallback.
    assert not any((env / "data").rglob("*.db"))
    assert not any((env / "home").rglob("*.db"))


def test_unreachable_postgres_exits_3(voicebook_cli: Invoke) -> None:
    outcome = voicebook_cli("db", "migrate", "--database-url", UNREACHABLE_URL)
    assert outcome.code == 3, outcome
    assert "Cannot reach the database at" in outcome.text
    assert "127.0.0.1:1" in outcome.text  # says which database
    assert "Traceback" not in outcome.text


def test_password_in_an_unreachable_url_is_not_echoed(env: Path) -> None:
    outcome = run_in_process(
        "db", "status", "--database-url", "postgresql://root:hunter2secret@127.0.0.1:1/x"
    )
    assert outcome.code == 3, outcome
    assert "hunter2secret" not in outcome.text


# --- import weight --------------------------------------------------------------------------------


def test_help_imports_no_server_agent_or_driver(env: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from typer.testing import CliRunner
        from voicebook.cli.app import app

        runner = CliRunner()
        codes = [runner.invoke(app, args).exit_code
                 for args in (["--help"], ["db", "--help"], ["slots", "--help"], ["--version"])]
        heavy = ("fastapi", "uvicorn", "livekit", "psycopg", "psycopg_pool", "aiosqlite")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print(json.dumps({"codes": codes, "loaded": loaded}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0, 0]
    assert report["loaded"] == []


def test_python_dash_m_help_runs(env: Path) -> None:
    outcome = run_subprocess("--help")
    assert outcome.code == 0, outcome
    assert "Usage" in outcome.stdout
