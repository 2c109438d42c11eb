"""`voicebook init` and `voicebook config check`, as a user runs them (subprocesses; the prompts
in a real pseudo-terminal): the starter file loads with `load_settings()` as written and with its
examples uncommented, and a bad file exits 2 naming its line and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent_support import Terminal, voicebook
from servers import clean_env
from voicebook.config import load_settings

EXAMPLE_LINE = re.compile(r"^# (\[|[a-z_]+ = )", re.MULTILINE)
"""A commented-out example in the starter file (`# price = 40`, `# [[staff]]`)."""


@pytest.fixture
def env() -> dict[str, str]:
    return clean_env()


def loaded(folder: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The settings a server started in `folder` would read."""
    monkeypatch.chdir(folder)
    return load_settings()


def check_json(folder: Path, env: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = voicebook("config", "check", "--json", env=env, cwd=folder)
    return done.returncode, json.loads(done.stdout)


def test_init_yes_writes_the_defaults_and_config_check_passes(
    isolated_env: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    done = voicebook("init", "--yes", env=env, cwd=isolated_env)
    assert done.returncode == 0, done.stderr
    assert "voicebook.toml" in done.stdout and "?" not in done.stdout  # nothing was asked
    business = loaded(isolated_env, monkeypatch).business_model
    assert business.name == "My Business" and business.rules.zone.key == "America/New_York"
    assert [(s.id, s.minutes) for s in business.services] == [("appointment", 30)]
    assert [(r.id, r.name, r.kind) for r in business.resources] == [("alex", "Alex", "staff")]

    check = voicebook("config", "check", env={**env, "COLUMNS": "120"}, cwd=isolated_env)
    assert check.returncode == 0, check.stderr
    assert "configuration is valid" in check.stdout and "Alex · staff · alex" in check.stdout
    assert re.search(r"mon\s*│\s*09:00-17:00", check.stdout)
    assert re.search(r"sat\s*│\s*closed", check.stdout)
    code, document = check_json(isolated_env, env)
    assert code == 0 and document["valid"] is True
    assert document["resources"][0]["hours"]["fri"] == ["09:00-17:00"]


def test_without_a_terminal_init_takes_the_defaults(
    isolated_env: Path, env: dict[str, str]
) -> None:
    done = voicebook("init", env=env, cwd=isolated_env, stdin="Somebody else\n")
    assert done.returncode == 0, done.stderr
    assert 'name = "My Business"' in (isolated_env / "voicebook.toml").read_text()


def test_init_never_overwrites_without_force(isolated_env: Path, env: dict[str, str]) -> None:
    (isolated_env / "voicebook.toml").write_text("# mine\n")
    done = voicebook("init", "--yes", env=env, cwd=isolated_env)
    assert done.returncode == 2 and "--force" in done.stderr
    assert (isolated_env / "voicebook.toml").read_text() == "# mine\n"
    assert voicebook("init", "--yes", "--force", env=env, cwd=isolated_env).returncode == 0
    assert "[[staff]]" in (isolated_env / "voicebook.toml").read_text()


def test_init_asks_at_a_terminal_and_re_asks_a_bad_answer(
    isolated_env: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Terminal("init", env=env, cwd=isolated_env) as term:
        mark = 0
        for prompt, answer in [
            (b"Business name", "Lee Family Clinic"),
            (b"Time zone", "Mars/Olympus"),
            (b"not an IANA time zone", "Europe/London"),
            (b"Opening hours", "mon-fri 08:00-12:00 13:00-18:00, sat 09:00-12:00"),
            (b"One service", "Dental check-up"),
            (b"length in minutes", "2"),
            (b"5 to 1440", "45"),
            (b"staff member", "Dr. Lee"),
        ]:
            term.read_until(prompt, mark)  # asked (again) since the last answer
            mark = term.type(answer + "\r")
        assert term.wait() == 0, term.text
        assert "wrote voicebook.toml" in term.text
    settings = loaded(isolated_env, monkeypatch)
    business = settings.business_model
    assert business.name == "Lee Family Clinic" and settings.timezone == "Europe/London"
    assert [(s.id, s.name, s.minutes) for s in business.services] == [
        ("dental-check-up", "Dental check-up", 45)
    ]
    (lee,) = business.staff
    assert (lee.id, lee.name, lee.services) == ("dr-lee", "Dr. Lee", {"dental-check-up"})
    assert [str(r) for r in lee.weekly[0]] == ["08:00-12:00", "13:00-18:00"]
    assert [str(r) for r in lee.weekly[5]] == ["09:00-12:00"] and 6 not in lee.weekly
    code, document = check_json(isolated_env, env)
    assert code == 0 and document["business"]["name"] == "Lee Family Clinic"


def test_every_commented_example_loads_once_uncommented(
    isolated_env: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert voicebook("init", "--yes", env=env, cwd=isolated_env).returncode == 0
    path = isolated_env / "voicebook.toml"
    text = path.read_text()
    assert len(EXAMPLE_LINE.findall(text)) > 30
    path.write_text(EXAMPLE_LINE.sub(r"\1", text))
    settings = loaded(isolated_env, monkeypatch)
    business = settings.business_model
    colour = business.service("colour")
    assert (colour.minutes, colour.buffer_before, colour.buffer_after, colour.price) == (
        90, 10, 15, 120
    )  # fmt: skip
    assert [r.id for r in business.staff] == ["alex", "sam"]
    assert [r.id for r in business.rooms_for(colour)] == ["room-1"]
    assert business.cancellation_notice_hours == 24 and len(business.faq) == 1
    assert len(business.rules.closed_dates) == 2 and business.staff[0].closed_dates
    assert business.phone and business.address and business.website and business.greeting
    code, document = check_json(isolated_env, env)
    assert code == 0 and [r["kind"] for r in document["resources"]] == ["staff", "staff", "room"]


def _line_of(path: Path, text: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return lines[occurrence - 1]


@pytest.mark.parametrize(
    ("change", "field", "line_text", "occurrence"),
    [
        (("minutes = 30", "minutes = 2"), "services.0.minutes", "minutes = 2", 1),
        (('hours = "mon-fri 09:00-17:00"', 'hours = "fry 09:00-17:00"'), "staff.0.hours", "fry", 1),
        (('id = "alex"', 'id = "Alex!"'), "staff.0.id", "Alex!", 1),
        (("horizon_days = 30", "horizon_days = 0"), "horizon_days", "horizon_days", 1),
    ],
)
def test_config_check_names_the_line_and_the_field_of_a_bad_value(
    isolated_env: Path,
    env: dict[str, str],
    change: tuple[str, str],
    field: str,
    line_text: str,
    occurrence: int,
) -> None:
    assert voicebook("init", "--yes", env=env, cwd=isolated_env).returncode == 0
    path = isolated_env / "voicebook.toml"
    assert change[0] in path.read_text()
    path.write_text(path.read_text().replace(*change, 1))
    where = f"voicebook.toml:{_line_of(path, line_text, occurrence)}: {field}"

    done = voicebook("config", "check", env={**env, "COLUMNS": "200"}, cwd=isolated_env)
    assert done.returncode == 2 and where in done.stderr, done.stderr
    assert "configuration is valid" not in done.stdout
    code, document = check_json(isolated_env, env)
    assert code == 2 and document["valid"] is False
    assert document["error"]["code"] == "invalid_configuration"
    assert any(problem.startswith(where) for problem in document["error"]["problems"])


def test_config_check_on_a_file_that_is_not_toml(isolated_env: Path, env: dict[str, str]) -> None:
    (isolated_env / "voicebook.toml").write_text("[business\nname = 1\n")
    done = voicebook("config", "check", env=env, cwd=isolated_env)
    assert done.returncode == 2 and "not valid TOML" in " ".join(done.stderr.split())
    code, document = check_json(isolated_env, env)
    assert code == 2 and "not valid TOML" in document["error"]["problems"][0]


def test_the_environment_overrides_the_file_and_is_named_when_bad(
    isolated_env: Path, env: dict[str, str]
) -> None:
    assert voicebook("init", "--yes", env=env, cwd=isolated_env).returncode == 0
    code, document = check_json(isolated_env, {**env, "VOICEBOOK_TIMEZONE": "Europe/Paris"})
    assert code == 0 and document["timezone"] == "Europe/Paris"
    code, document = check_json(isolated_env, {**env, "VOICEBOOK_TIMEZONE": "Nowhere/City"})
    assert code == 2 and document["error"]["problems"][0].startswith("VOICEBOOK_TIMEZONE:")


def test_config_check_without_a_business_file_is_one_calendar(
    isolated_env: Path, env: dict[str, str]
) -> None:
    code, document = check_json(isolated_env, {**env, "VOICEBOOK_HOURS": "sat 10:00-14:00"})
    assert code == 0 and document["business_file"] is None and document["business"] is None
    (calendar,) = document["resources"]
    assert calendar["hours"]["sat"] == ["10:00-14:00"] and calendar["hours"]["mon"] == []


def test_the_readme_example_business_file_loads(
    isolated_env: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The business file") :]
    example = section[
        section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml"))
    ]
    (isolated_env / "voicebook.toml").write_text(example)
    business = loaded(isolated_env, monkeypatch).business_model
    treatment = business.service("treatment")
    assert [r.id for r in business.rooms_for(treatment)] == ["room-1"]
    code, document = check_json(isolated_env, env)
    assert code == 0 and document["faq"][0]["question"] == "Where can I park?"
