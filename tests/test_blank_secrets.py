"""A blank secret is an unset secret (issue 9, DESIGN §3 and §6).

`VAR=` — in the environment, in `.env` or as a keyword argument — is the same as leaving VAR out,
so the shipped template (`.env.example`, blank keys and all) cannot turn auth off on a public host,
and works when copied as `.env`. One predicate, `Settings.service_key()`, says whether a service
key is set: `voicebook serve`'s refusal and banner and the server's auth all use it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import SecretStr

import voicebook
from commands import Outcome
from servers import clean_env, free_port, running_process, running_server
from voicebook.config import ConfigError, Settings, load_settings, variable_name

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".env.example"
SCENARIOS = ROOT / "examples" / "scenarios.eval.yaml"
EXIT_USAGE = 2
REAL_KEY = "blank-secrets-real-key-0123456789"
BLANKS = ["", "   ", "\t \n"]

SECRET_FIELDS = sorted(
    name for name, field in Settings.model_fields.items() if SecretStr in get_args(field.annotation)
)
OPTIONAL_FIELDS = sorted(
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, types.UnionType) and type(None) in get_args(field.annotation)
)


def voicebook_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60) -> Outcome:
    """`python -m voicebook ARGS` as a real subprocess with exactly `env`, in `cwd`."""
    done = subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def isolated(tmp_path: Path, **more: str) -> dict[str, str]:
    """A clean environment with throwaway HOME/XDG dirs and a database inside `tmp_path`."""
    return clean_env(
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        VOICEBOOK_DATABASE_URL=f"sqlite:///{tmp_path / 'voicebook.db'}",
        **more,
    )


def assert_refused_before_listening(outcome: Outcome) -> None:
    assert outcome.code == EXIT_USAGE, outcome
    assert "VOICEBOOK_API_KEY" in outcome.text, outcome
    assert "refusing to listen" in outcome.text, outcome
    assert "serving on" not in outcome.text, outcome  # the banner comes after the check
    assert "Uvicorn running" not in outcome.text, outcome
    assert "Traceback" not in outcome.text, outcome


# --- the predicate, field by field ---------------------------------------------------------------


@pytest.fixture
def no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable voicebook reads in the environment, and a working directory without .env."""
    for name in list(os.environ):
        if name.startswith("VOICEBOOK_") or name in {
            variable_name(field) for field in Settings.model_fields
        }:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_every_secret_of_the_design_is_a_secret_field() -> None:
    assert {
        "api_key",
        "livekit_api_secret",
        "supabase_key",
        "openrouter_api_key",
        "openai_api_key",
        "deepgram_api_key",
        "cartesia_api_key",
        "bey_api_key",
    } <= set(SECRET_FIELDS)


@pytest.mark.parametrize("field", SECRET_FIELDS)
@pytest.mark.parametrize("blank", BLANKS, ids=["empty", "spaces", "whitespace"])
def test_a_blank_secret_is_unset(no_settings: pytest.MonkeyPatch, field: str, blank: str) -> None:
    assert getattr(Settings(**{field: blank}), field) is None  # keyword argument
    assert getattr(Settings(**{field: SecretStr(blank)}), field) is None
    no_settings.setenv(variable_name(field), blank)
    assert getattr(Settings(), field) is None  # environment
    no_settings.delenv(variable_name(field))
    Path(".env").write_text(f"{variable_name(field)}={blank.strip()}\n")
    assert getattr(Settings(), field) is None  # .env


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_a_real_secret_is_set(no_settings: pytest.MonkeyPatch, field: str) -> None:
    secret = getattr(Settings(**{field: REAL_KEY}), field)
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == REAL_KEY
    no_settings.setenv(variable_name(field), REAL_KEY)
    assert getattr(Settings(), field).get_secret_value() == REAL_KEY
    assert REAL_KEY not in repr(Settings())  # still a secret


@pytest.mark.parametrize("blank", [None, *BLANKS], ids=["unset", "empty", "spaces", "whitespace"])
def test_service_key_is_none_without_a_key(no_settings: pytest.MonkeyPatch, blank: str) -> None:
    assert Settings(api_key=blank).service_key() is None
    # Even a Settings built around validation (model_copy) cannot smuggle a blank key in.
    copied = Settings().model_copy(update={"api_key": SecretStr(blank or "")})
    assert copied.service_key() is None
    if blank is not None:
        no_settings.setenv("VOICEBOOK_API_KEY", blank)
        assert Settings().service_key() is None


def test_service_key_is_the_key(no_settings: pytest.MonkeyPatch) -> None:
    assert Settings(api_key=REAL_KEY).service_key() == REAL_KEY
    no_settings.setenv("VOICEBOOK_API_KEY", REAL_KEY)
    assert Settings().service_key() == REAL_KEY


@pytest.mark.parametrize("field", OPTIONAL_FIELDS)
@pytest.mark.parametrize("blank", BLANKS, ids=["empty", "spaces", "whitespace"])
def test_a_blank_optional_setting_is_unset(
    no_settings: pytest.MonkeyPatch, field: str, blank: str
) -> None:
    assert getattr(Settings(**{field: blank}), field) is None
    no_settings.setenv(variable_name(field), blank)
    assert getattr(Settings(), field) is None


def test_every_variable_blank_is_every_variable_unset(no_settings: pytest.MonkeyPatch) -> None:
    defaults = Settings().model_dump()
    for field in Settings.model_fields:
        no_settings.setenv(variable_name(field), "")
    assert Settings().model_dump() == defaults  # VOICEBOOK_DATABASE_PREPARED_STATEMENTS= too
    for field in Settings.model_fields:
        no_settings.setenv(variable_name(field), "  ")
    assert Settings().model_dump() == defaults
    assert Settings(**dict.fromkeys(Settings.model_fields, " ")).model_dump() == defaults


def test_a_json_setting_blank_is_unset_and_malformed_names_the_variable(
    no_settings: pytest.MonkeyPatch,
) -> None:
    no_settings.setenv("VOICEBOOK_PRICE_LLM_MODELS", "  ")
    assert Settings().price_llm_models == {}
    no_settings.setenv("VOICEBOOK_PRICE_LLM_MODELS", '{"m": [1, 2]}')
    assert Settings().price_llm_models == {"m": (1.0, 2.0)}
    no_settings.setenv("VOICEBOOK_PRICE_LLM_MODELS", "{not json")
    with pytest.raises(ConfigError, match="VOICEBOOK_PRICE_LLM_MODELS: not valid JSON"):
        load_settings()


# --- `voicebook serve` on a public host ----------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_serve_refuses_a_public_host_with_a_blank_key(tmp_path: Path, blank: str) -> None:
    env = isolated(tmp_path, VOICEBOOK_API_KEY=blank)
    outcome = voicebook_cli(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, cwd=tmp_path
    )
    assert_refused_before_listening(outcome)


def test_serve_refuses_a_public_host_with_a_blank_key_in_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VOICEBOOK_API_KEY=\n")
    outcome = voicebook_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        env=isolated(tmp_path),
        cwd=tmp_path,
    )
    assert_refused_before_listening(outcome)


def test_serve_on_a_public_host_starts_with_a_real_key(tmp_path: Path) -> None:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}"}
    env["VOICEBOOK_API_KEY"] = REAL_KEY
    env["VOICEBOOK_VERIFICATION"] = "off"  # a public host refuses the console code sender
    with running_server(env, tmp_path, args=("--host", "0.0.0.0")) as server:
        assert "auth       on" in server.log()
        assert REAL_KEY not in server.log()
        answer = httpx.post(f"{server.url}/tools/fetch_slots", json={"session_id": "x"})
        assert answer.status_code == 401, answer.text


# --- on loopback a blank key is no key -----------------------------------------------------------


def service_answers(url: str) -> list[tuple[str, int, Any]]:
    """What the service endpoints answer without (or with a made-up) Authorization: each
    request, its status and its error code (None on success)."""
    answers: list[tuple[str, int, Any]] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        started = http.post("/session/start")
        assert started.status_code == 200, started.text
        session_id = started.json()["session_id"]

        def record(label: str, response: httpx.Response) -> None:
            body = (
                response.json()
                if response.headers["content-type"].startswith("application/json")
                else None
            )
            code = body["error"]["code"] if isinstance(body, dict) and "error" in body else None
            answers.append((label, response.status_code, code))

        for headers in ({}, {"Authorization": "Bearer made-up"}):
            who = "bearer" if headers else "none"
            for n, (tool, args) in enumerate(
                [
                    ("identify_user", {"phone": "+1 212 555 0147", "name": "Ada"}),
                    ("fetch_slots", {"limit": 3}),
                    ("retrieve_appointments", {}),
                    ("cancel_appointment", {"appointment_id": "nope"}),
                ]
            ):
                response = http.post(
                    f"/tools/{tool}",
                    json={"session_id": session_id, **args},
                    headers={**headers, "Idempotency-Key": f"call_{who}_{n}"},
                )
                record(f"{who} POST /tools/{tool}", response)
            report = http.post(
                "/agent/report",
                json={"session_id": session_id, "transcript": [{"role": "user", "text": "hi"}]},
                headers=headers,
            )
            record(f"{who} POST /agent/report", report)
            for path in ("/readyz", "/metrics"):
                answers.append(
                    (f"{who} GET {path}", http.get(path, headers=headers).status_code, None)
                )
    return answers


@pytest.fixture(scope="module")
def keyless_answers(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, Any]]:
    """The reference: a loopback server with no VOICEBOOK_API_KEY at all."""
    directory = tmp_path_factory.mktemp("keyless")
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}"}
    with running_server(env, directory) as server:
        assert "auth       off" in server.log()
        return service_answers(server.url)


@pytest.mark.parametrize("where", ["env-empty", "env-spaces", "dotenv"])
def test_a_blank_key_on_loopback_is_no_key(
    tmp_path: Path, keyless_answers: list[tuple[str, int, Any]], where: str
) -> None:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}"}
    if where == "dotenv":
        (tmp_path / ".env").write_text("VOICEBOOK_API_KEY=\n")
    else:
        env["VOICEBOOK_API_KEY"] = "" if where == "env-empty" else "   "
    with running_server(env, tmp_path) as server:
        assert "auth       off (no VOICEBOOK_API_KEY)" in server.log()
        answers = service_answers(server.url)
    assert answers == keyless_answers
    assert all(status != 401 for _, status, _ in answers), answers


# --- the shipped template, copied as .env --------------------------------------------------------


@pytest.fixture
def template_dir(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A working directory holding `.env.example` as `.env`, and an isolated environment whose
    database lives in tmp (the template leaves VOICEBOOK_DATABASE_URL blank: the user data dir)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(TEMPLATE, work / ".env")
    env = isolated(tmp_path)
    yield work, env
    # Nothing reached the throwaway user data dir: the database was the one in tmp.
    assert not (tmp_path / "data" / "voicebook").exists()


def test_the_template_leaves_the_database_url_blank() -> None:
    # Why the tests above point VOICEBOOK_DATABASE_URL into tmp: the copied template would not.
    assigned = dict(
        line.split("=", 1)
        for line in TEMPLATE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert assigned["VOICEBOOK_DATABASE_URL"] == ""
    assert assigned["VOICEBOOK_API_KEY"] == ""


def test_every_command_that_needs_no_server_works_with_the_copied_template(
    template_dir: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    work, env = template_dir

    def ok(*args: str) -> Outcome:
        outcome = voicebook_cli(*args, env=env, cwd=work)
        assert outcome.code == 0, (args, outcome)
        assert "Traceback" not in outcome.text, (args, outcome)
        return outcome

    help_text = ok("--help").stdout
    for command in ("slots", "serve", "token", "call", "eval", "db", "session", "tool", "agent"):
        assert command in help_text
    assert ok("--version").stdout.strip() == f"voicebook {voicebook.__version__}"
    ok("db", "migrate")
    assert (tmp_path / "voicebook.db").exists()
    assert "up to date" in ok("db", "migrate").text
    ok("db", "status")
    assert "CREATE TABLE" in ok("db", "schema").stdout
    table = ok("slots").text
    assert "slot_" in table
    # The template's own hours and zone are what slots are listed in.
    assert "America/New_York" in table
    slots = json.loads(ok("slots", "--json").stdout)["slots"]
    assert slots and all(s["slot_id"].startswith("slot_") for s in slots)


def test_serve_works_with_the_copied_template(
    template_dir: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    work, env = template_dir
    port = free_port()
    argv = [sys.executable, "-m", "voicebook", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with running_process(argv, ready_url=f"{url}/healthz", env=env, cwd=work, log_path=log_path):
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200  # no key: auth is off
        started = httpx.post(f"{url}/session/start")
        assert started.status_code == 200, started.text
        # The template's blank LiveKit settings count as unset: an error status naming them.
        session_id = started.json()["session_id"]
        token = httpx.post(f"{url}/livekit/token", json={"session_id": session_id})
        assert token.status_code == 503, token.text
        assert "LIVEKIT_URL" in token.text
    log = log_path.read_text()
    assert "auth       off (no VOICEBOOK_API_KEY)" in log


def test_serve_on_a_public_host_is_refused_with_the_copied_template(
    template_dir: tuple[Path, dict[str, str]],
) -> None:
    work, env = template_dir
    outcome = voicebook_cli(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, cwd=work
    )
    assert_refused_before_listening(outcome)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("token", "--session", "AAAAAAAAAAAAAAAAAAAAAA"), ["LIVEKIT_URL", "LIVEKIT_API_SECRET"]),
        (("call", "--text", "--say", "hello"), ["OPENROUTER_API_KEY"]),
        (("eval", str(SCENARIOS)), ["OPENROUTER_API_KEY"]),
        (("agent", "dev"), ["LIVEKIT_URL", "DEEPGRAM_API_KEY", "CARTESIA_API_KEY"]),
    ],
    ids=["token", "call", "eval", "agent"],
)
def test_commands_needing_credentials_say_the_template_blanks_are_unset(
    template_dir: tuple[Path, dict[str, str]], args: tuple[str, ...], names: list[str]
) -> None:
    work, env = template_dir
    outcome = voicebook_cli(*args, env=env, cwd=work)
    assert outcome.code == EXIT_USAGE, outcome
    for name in names:
        assert name in outcome.text, outcome
    assert "Traceback" not in outcome.text, outcome
