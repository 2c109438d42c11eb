"""The greeting `voicebook call --text` remembers (cli/greeting_cache.py): shown at once on the
next run with the same configuration, and never once anything it depends on has changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_support import BOOKING_RULES, BYE, require_agent_extra
from servers import clean_env
from voicebook.agent.greeting import DEFAULT_GREETING
from voicebook.cli import greeting_cache


def test_a_remembered_greeting_is_recalled_for_the_same_configuration(isolated_env: Path) -> None:
    assert greeting_cache.recall() is None
    greeting_cache.remember("Welcome to Lee's clinic.")
    assert greeting_cache.recall() == "Welcome to Lee's clinic."
    assert greeting_cache.cache_path().is_relative_to(os.environ["XDG_CACHE_HOME"])


def _set_variable(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    monkeypatch.setenv("AGENT_GREETING", "Hi there.")


def _edit_env_file(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    (work / ".env").write_text("AGENT_GREETING=Hello from the .env file\n")


def _edit_named_business_file(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    (work / "clinic.toml").write_text('[business]\nname = "Lee Clinic"\ngreeting = "Other."\n')


def _change_directory(monkeypatch: pytest.MonkeyPatch, work: Path) -> None:
    other = work / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)


@pytest.mark.parametrize(
    "change",
    [
        _set_variable,
        _edit_env_file,
        _edit_named_business_file,
        _change_directory,
    ],
)
def test_any_change_of_an_input_is_a_miss(
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[pytest.MonkeyPatch, Path], None],
) -> None:
    """The environment, the working directory, `.env`, the business file `.env` names and a
    voicebook.toml that appears: each can change the greeting Settings decides."""
    work = isolated_env
    (work / ".env").write_text("VOICEBOOK_BUSINESS_FILE=clinic.toml\n")
    (work / "clinic.toml").write_text('[business]\nname = "Lee Clinic"\n')
    greeting_cache.remember("Welcome.")
    assert greeting_cache.recall() == "Welcome."
    change(monkeypatch, work)
    assert greeting_cache.recall() is None


def test_a_voicebook_toml_that_appears_is_a_miss(isolated_env: Path) -> None:
    """Without VOICEBOOK_BUSINESS_FILE, voicebook.toml in the working directory is the business
    file once it exists."""
    greeting_cache.remember("Welcome.")
    (isolated_env / "voicebook.toml").write_text('[business]\nname = "Lee Clinic"\n')
    assert greeting_cache.recall() is None


def test_a_damaged_or_unwritable_cache_is_a_miss_not_an_error(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = greeting_cache.cache_path()
    path.parent.mkdir(parents=True)
    for damaged in ("{not json", "[1, 2]", '{"digest": 1}', ""):
        path.write_text(damaged)
        assert greeting_cache.recall() is None
    blocked = isolated_env / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # its "directory" is a file
    greeting_cache.remember("Welcome.")
    assert greeting_cache.recall() is None


def test_the_file_keeps_no_variable_in_clear(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOOK_API_KEY", "sk-live-4f9a8b7c6d5e")
    greeting_cache.remember("Welcome.")
    kept = greeting_cache.cache_path().read_text()
    assert "4f9a8b7c6d5e" not in kept
    assert str(isolated_env) not in kept


def _imported(log: str, module: str) -> int:
    """Where Python's import log (PYTHONPROFILEIMPORTTIME) records `module` as imported."""
    found = re.search(rf"^import time:.*\|\s+{re.escape(module)}$", log, re.MULTILINE)
    assert found is not None, f"{module} was never imported"
    return found.start()


def _call(env: dict[str, str], cwd: Path) -> str:
    """`voicebook call --text --say BYE`, with Python's import log on the same pipe (the order
    of the two is the order of events)."""
    done = subprocess.run(
        [sys.executable, "-m", "voicebook", "call", "--text", "--say", BYE],
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def test_call_text_shows_the_remembered_greeting_first_and_never_a_stale_one(
    scripted: Any, tmp_path: Path
) -> None:
    """Run 1 remembers the default greeting; run 2 (same configuration) shows it before
    pydantic (the settings) has even been imported; after `.env` sets AGENT_GREETING, run 3
    shows only the new greeting, and run 4 shows that one at once."""
    require_agent_extra()
    scripted.model.add(BOOKING_RULES)
    env = clean_env(
        scripted.env(),
        VOICEBOOK_DATABASE_URL=f"sqlite:///{tmp_path}/g.db",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    first = _call(env, tmp_path)
    assert first.count(DEFAULT_GREETING) == 1
    assert _imported(first, "pydantic") < first.index(DEFAULT_GREETING)  # nothing remembered

    second = _call(env, tmp_path)
    assert second.count(DEFAULT_GREETING) == 1
    assert second.index(DEFAULT_GREETING) < _imported(second, "pydantic")

    custom = "Good morning, Lee Clinic here. What is your phone number?"
    (tmp_path / ".env").write_text(f"AGENT_GREETING={custom}\n")
    third = _call(env, tmp_path)
    assert DEFAULT_GREETING not in third
    assert third.count(custom) == 1

    fourth = _call(env, tmp_path)
    assert fourth.count(custom) == 1
    assert fourth.index(custom) < _imported(fourth, "pydantic")
