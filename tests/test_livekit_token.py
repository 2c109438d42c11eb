"""LiveKit token minting (server/livekit.py) and `voicebook token`, verified with LiveKit's own
TokenVerifier: identity, name, room, grants, lifetime, the agent dispatch, and that the API secret
never shows up in any output."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
from livekit import api
from typer.testing import CliRunner

from voicebook.cli.app import app
from voicebook.config import Settings
from voicebook.scheduling.errors import DomainError, InvalidInput
from voicebook.server.livekit import LiveKitNotConfigured, LiveKitToken, mint_token

URL = "wss://voicebook-test.livekit.cloud"
KEY = "APItestkey123"
SECRET = "s3cr3t-0123456789abcdef0123456789abcdef"  # long enough for HS256 without warnings
AGENT = "receptionist-test"
SESSION = "9f1c2b3a4d5e6f708192a3b4c5d6e7f8"
LIVEKIT_VARS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No .env in the working directory and no LiveKit variables inherited from the shell."""
    monkeypatch.chdir(tmp_path)
    for name in (*LIVEKIT_VARS, "LIVEKIT_AGENT_NAME", "VOICEBOOK_TOKEN_TTL_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "livekit_url": URL,
        "livekit_api_key": KEY,
        "livekit_api_secret": SECRET,
        "livekit_agent_name": AGENT,
    }
    values.update(overrides)
    return Settings(**values)


def verify(token: str) -> api.access_token.Claims:
    return api.TokenVerifier(KEY, SECRET).verify(token)


def raw_claims(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)


# --- mint_token --------------------------------------------------------------------------------


def test_token_joins_the_session_room_with_the_given_identity_and_name() -> None:
    minted = mint_token(settings(), SESSION, identity="alice-42", name="Alice")

    assert isinstance(minted, LiveKitToken)
    assert (minted.url, minted.room, minted.identity) == (URL, SESSION, "alice-42")
    claims = verify(minted.token)
    assert claims.identity == "alice-42"
    assert claims.name == "Alice"
    video = claims.video
    assert video is not None
    assert video.room_join is True
    assert video.room == SESSION
    assert video.can_publish is True
    assert video.can_subscribe is True
    assert video.can_publish_data is True
    # Nothing beyond joining this one room.
    assert not video.room_admin
    assert not video.room_create
    assert not video.room_list


def test_token_dispatches_the_configured_agent_with_the_session_id() -> None:
    claims = verify(mint_token(settings(), SESSION).token)

    assert claims.room_config is not None
    agents = list(claims.room_config.agents)
    assert len(agents) == 1
    assert agents[0].agent_name == AGENT
    assert json.loads(agents[0].metadata) == {"session_id": SESSION}


def test_agent_name_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "from-env-agent")
    configured = Settings(livekit_url=URL, livekit_api_key=KEY, livekit_api_secret=SECRET)

    claims = verify(mint_token(configured, SESSION).token)

    assert claims.room_config is not None
    assert claims.room_config.agents[0].agent_name == "from-env-agent"


def test_generated_identity_when_none_is_given() -> None:
    first = mint_token(settings(), SESSION)
    second = mint_token(settings(), SESSION, identity="  ")

    for minted in (first, second):
        assert re.fullmatch(r"caller-[0-9a-f]{8}", minted.identity)
        claims = verify(minted.token)
        assert claims.identity == minted.identity
        assert claims.name == ""  # no name unless one is given
    assert first.identity != second.identity


@pytest.mark.parametrize("minutes", [1, 15, 60, 24 * 60])
def test_lifetime_is_the_configured_ttl(minutes: int) -> None:
    before = int(datetime.now(timezone.utc).timestamp())
    minted = mint_token(settings(token_ttl_minutes=minutes), SESSION)
    after = int(datetime.now(timezone.utc).timestamp())

    verify(minted.token)
    claims = raw_claims(minted.token)
    assert before - 1 <= claims["nbf"] <= after + 1
    assert claims["exp"] - claims["nbf"] == pytest.approx(minutes * 60, abs=1)


def test_now_fixes_the_start_of_the_lifetime() -> None:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)

    minted = mint_token(settings(token_ttl_minutes=30), SESSION, identity="bob", now=start)

    claims = verify(minted.token)  # same claims as the library's own to_jwt() path
    assert claims.identity == "bob"
    assert claims.video is not None
    assert claims.video.room == SESSION
    assert claims.room_config is not None
    assert claims.room_config.agents[0].agent_name == AGENT
    raw = raw_claims(minted.token)
    assert raw["nbf"] == int(start.timestamp())
    assert raw["exp"] == int((start + timedelta(minutes=30)).timestamp())


def test_expired_token_does_not_verify() -> None:
    long_ago = datetime.now(timezone.utc) - timedelta(hours=3)
    minted = mint_token(settings(token_ttl_minutes=60), SESSION, now=long_ago)

    with pytest.raises(jwt.ExpiredSignatureError):
        verify(minted.token)


def test_token_signed_with_another_secret_fails_verification() -> None:
    forged = mint_token(settings(livekit_api_secret="another-secret-0123456789abcdef01"), SESSION)

    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged.token)
    # And our genuine token does not verify against some other secret either.
    genuine = mint_token(settings(), SESSION)
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-0123456789abcdef01").verify(genuine.token)


def test_token_from_another_api_key_fails_verification() -> None:
    other = mint_token(settings(livekit_api_key="APIsomeoneelse"), SESSION)

    with pytest.raises(jwt.InvalidIssuerError):
        verify(other.token)


def test_secret_is_not_in_the_token_or_its_repr() -> None:
    minted = mint_token(settings(), SESSION, identity="carol", name="Carol")

    assert SECRET not in minted.token
    assert SECRET not in json.dumps(raw_claims(minted.token))
    assert SECRET not in repr(minted)
    assert minted.token not in repr(minted)


SUBSETS = [
    combo
    for size in (1, 2, 3)
    for combo in itertools.combinations(LIVEKIT_VARS, size)  # which variables are missing
]


@pytest.mark.parametrize("missing", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_missing_settings_name_exactly_the_missing_variables(missing: tuple[str, ...]) -> None:
    field = {
        "LIVEKIT_URL": "livekit_url",
        "LIVEKIT_API_KEY": "livekit_api_key",
        "LIVEKIT_API_SECRET": "livekit_api_secret",
    }
    # Unset (None) for the first missing variable, blank for the others: both count as missing.
    blanks = {field[name]: (None if i == 0 else "  ") for i, name in enumerate(missing)}

    with pytest.raises(LiveKitNotConfigured) as caught:
        mint_token(settings(**blanks), SESSION)

    error = caught.value
    assert isinstance(error, DomainError)
    assert error.code == "livekit_not_configured"
    assert error.status == 503
    assert error.message.startswith("LiveKit is not configured: set ")
    for name in LIVEKIT_VARS:
        assert (name in error.message) == (name in missing)
    assert error.to_dict()["code"] == "livekit_not_configured"
    assert error.to_dict()["missing"] == list(missing)
    assert SECRET not in error.message


def test_missing_settings_message_reads_as_a_sentence() -> None:
    with pytest.raises(LiveKitNotConfigured) as caught:
        mint_token(settings(livekit_url=None), SESSION)
    assert caught.value.message == "LiveKit is not configured: set LIVEKIT_URL."

    with pytest.raises(LiveKitNotConfigured) as caught:
        mint_token(settings(livekit_api_key=None, livekit_api_secret=None), SESSION)
    assert caught.value.message == (
        "LiveKit is not configured: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
    )

    with pytest.raises(LiveKitNotConfigured) as caught:
        mint_token(Settings(), SESSION)
    assert caught.value.message == (
        "LiveKit is not configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
    )


def test_blank_session_id_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        mint_token(settings(), "  ")


# --- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def livekit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", URL)
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", AGENT)


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_subprocess(*args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=os.getcwd(),
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(params=["runner", "subprocess"])
def cli(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return run_cli if request.param == "runner" else run_subprocess


@pytest.mark.usefixtures("livekit_env")
def test_cli_json_verifies(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("token", "--session", "abc", "--json")

    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"token", "url", "room", "identity"}
    assert (data["url"], data["room"]) == (URL, "abc")
    assert re.fullmatch(r"caller-[0-9a-f]{8}", data["identity"])
    claims = verify(data["token"])
    assert claims.identity == data["identity"]
    assert claims.video is not None
    assert claims.video.room == "abc"
    assert claims.room_config is not None
    assert claims.room_config.agents[0].agent_name == AGENT
    assert json.loads(claims.room_config.agents[0].metadata) == {"session_id": "abc"}
    assert SECRET not in out
    assert SECRET not in err


@pytest.mark.usefixtures("livekit_env")
def test_cli_prints_the_jwt_alone(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("token", "--session", "abc", "--identity", "dave", "--name", "Dave")

    assert code == 0, err
    assert out.endswith("\n")
    assert out.count("\n") == 1
    token = out.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    claims = verify(token)
    assert (claims.identity, claims.name) == ("dave", "Dave")
    assert claims.video is not None
    assert claims.video.room == "abc"
    assert SECRET not in out
    assert SECRET not in err


@pytest.mark.parametrize("missing", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_cli_without_settings_exits_2_naming_the_variables(
    missing: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LIVEKIT_VARS:
        if name not in missing:
            monkeypatch.setenv(name, {"LIVEKIT_URL": URL, "LIVEKIT_API_KEY": KEY}.get(name, SECRET))

    code, out, err = run_cli("token", "--session", "abc", "--json")

    assert code == 2
    error = json.loads(out)["error"]  # --json: the error is a document on stdout
    assert error["code"] == "livekit_not_configured"
    assert "LiveKit is not configured" in error["message"]
    for name in LIVEKIT_VARS:
        assert (name in error["message"]) == (name in missing)
    assert SECRET not in out + err


def test_cli_subprocess_without_settings_exits_2() -> None:
    code, out, err = run_subprocess("token", "--session", "abc")

    assert code == 2
    assert out == ""
    message = " ".join(err.split())
    assert "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in message


def test_cli_reads_settings_from_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        f"LIVEKIT_URL={URL}\nLIVEKIT_API_KEY={KEY}\nLIVEKIT_API_SECRET={SECRET}\n"
        f"LIVEKIT_AGENT_NAME={AGENT}\n",
        encoding="utf-8",
    )

    code, out, err = run_subprocess("token", "--session", "from-dotenv", "--json")

    assert code == 0, err
    claims = verify(json.loads(out)["token"])
    assert claims.video is not None
    assert claims.video.room == "from-dotenv"
    assert SECRET not in out + err


def test_cli_requires_a_session(livekit_env: None) -> None:
    code, out, err = run_cli("token")

    assert code == 2
    assert "--session" in err
    assert SECRET not in out + err
