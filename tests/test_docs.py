"""The documentation cannot drift from the code: every setting is documented."""

from __future__ import annotations

from pathlib import Path

from voicebook.config import Settings, variable_name

ROOT = Path(__file__).resolve().parents[1]


def variable_names() -> list[str]:
    return [variable_name(name) for name in Settings.model_fields]


def test_env_example_lists_every_variable_once() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assigned = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
    assert sorted(assigned) == sorted(variable_names())


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in variable_names() if f"`{name}" not in readme and name not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in readme
    assert "\npython -m pytest" in ci
