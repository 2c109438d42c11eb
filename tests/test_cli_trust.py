"""`voicebook session start --phone`, `session attest` and `tool verify_caller` against a real
`voicebook serve` that texts its codes through the webhook sender to a local receiver
(tests/sms.py), where the test reads them as the phone's owner would.

As in test_cli_remote.py, every flow runs in-process (Typer's CliRunner, --url / --api-key) and
as a subprocess (VOICEBOOK_URL / VOICEBOOK_API_KEY). Exit codes: 0 ok, 1 a refusal, 2 usage or
a wrong service key.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands import Invoke, Outcome
from servers import Server, clean_env, running_server
from sms import SmsWebhook
from voicebook.cli.app import app
from voicebook.models import (
    CallerResponse,
    IdentifyUserResponse,
    SessionView,
    StartSessionResponse,
    VerifyCallerResponse,
)

API_KEY = "cli-trust-key-0123456789"
_numbers = itertools.count(4100)


def phone() -> str:
    return f"+1415555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def webhook() -> Iterator[SmsWebhook]:
    with SmsWebhook(secret="cli-webhook-" + secrets.token_hex(8)) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(webhook: SmsWebhook, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cli-trust")
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'x.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
        "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
        **webhook.env(),
    }
    with running_server(env, tmp) as running:
        yield running


@pytest.fixture(params=["runner", "subprocess"])
def cli(request: pytest.FixtureRequest, server: Server, tmp_path: Path) -> Invoke:
    if request.param == "runner":
        unset: dict[str, str | None] = {
            "VOICEBOOK_URL": None,
            "BACKEND_BASE_URL": None,
            "VOICEBOOK_API_KEY": None,
        }

        def invoke(*args: str) -> Outcome:
            done = CliRunner().invoke(
                app, [*args, "--url", server.url, "--api-key", API_KEY], env=unset
            )
            if done.exception is not None and not isinstance(done.exception, SystemExit):
                raise done.exception
            return Outcome(done.exit_code, done.stdout, done.stderr)

        return invoke
    env = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY, COLUMNS="200")

    def run(*args: str) -> Outcome:
        done = subprocess.run(
            [sys.executable, "-m", "voicebook", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    return run


def ok(cli: Invoke, *args: str) -> Outcome:
    outcome = cli(*args)
    assert outcome.code == 0, outcome
    return outcome


def book_earlier(cli: Invoke, number: str, notes: str) -> str:
    """The owner books in a trusted session of their own; the appointment id."""
    started = ok(cli, "session", "start", "--phone", number, "--name", "Owner", "--json")
    session = StartSessionResponse.model_validate(started.json()).session_id
    slots = ok(cli, "tool", "fetch_slots", "--session", session, "--limit", "1", "--json")
    slot = slots.json()["slots"][0]["slot_id"]
    booked = ok(
        cli, "tool", "book_appointment", "--session", session, "--slot", slot,
        "--notes", notes, "--json",
    )  # fmt: skip
    ok(cli, "session", "end", "--session", session, "--json")
    return str(booked.json()["appointment"]["id"])


def test_a_trusted_start_and_identify_without_a_phone(cli: Invoke) -> None:
    number = phone()
    earlier = book_earlier(cli, number, "earlier visit")
    readable = ok(cli, "session", "start", "--phone", number, "--name", "Owner")
    assert "trusted" in readable.text and number[-4:] in readable.text
    assert number not in readable.text  # masked
    assert "identify_user --session" in readable.text and "--phone …" not in readable.text

    started = StartSessionResponse.model_validate(
        ok(cli, "session", "start", "--phone", number, "--json").json()
    )
    assert started.identity_level == "trusted" and started.user is not None
    who = ok(cli, "tool", "identify_user", "--session", started.session_id)
    assert "trusted" in who.text and "returning caller" in who.text and earlier in who.text
    as_json = IdentifyUserResponse.model_validate(
        ok(cli, "tool", "identify_user", "--session", started.session_id, "--json").json()
    )
    assert (as_json.level, as_json.verification_required) == ("trusted", False)

    other = cli("tool", "identify_user", "--session", started.session_id, "--phone", phone())
    assert other.code == 1, other
    assert "(caller_fixed)" in other.text


def test_attest_a_caller_as_the_agent_does_on_a_sip_line(cli: Invoke) -> None:
    number = phone()
    session = StartSessionResponse.model_validate(
        ok(cli, "session", "start", "--json").json()
    ).session_id
    readable = ok(cli, "session", "attest", "--session", session, "--phone", number)
    assert "attested" in readable.text and "trusted" in readable.text
    assert number not in readable.text
    again = CallerResponse.model_validate(
        ok(cli, "session", "attest", "--session", session, "--phone", number, "--json").json()
    )
    assert (again.session_id, again.identity_level) == (session, "trusted")
    shown = ok(cli, "session", "show", "--session", session)
    assert "· trusted" in shown.text
    view = SessionView.model_validate(
        ok(cli, "session", "show", "--session", session, "--json").json()
    )
    assert view.identity_level == "trusted"


def test_verify_caller_sends_checks_and_refuses(cli: Invoke, webhook: SmsWebhook) -> None:
    number = phone()
    earlier = book_earlier(cli, number, "private note")
    session = StartSessionResponse.model_validate(
        ok(cli, "session", "start", "--json").json()
    ).session_id
    unsent = cli("tool", "verify_caller", "--session", session)
    assert unsent.code == 1 and "(not_identified)" in unsent.text, unsent

    claimed = ok(cli, "tool", "identify_user", "--session", session, "--phone", number)
    assert "claimed" in claimed.text
    assert f"voicebook tool verify_caller --session {session}" in claimed.text
    assert earlier not in claimed.text and "private note" not in claimed.text
    listed = ok(cli, "tool", "retrieve_appointments", "--session", session)
    assert "appointments: none" in listed.text and "verify_caller" in listed.text

    early = cli("tool", "verify_caller", "--session", session, "--code", "123456")
    assert early.code == 1 and "(no_code_sent)" in early.text, early

    sent = ok(cli, "tool", "verify_caller", "--session", session)
    assert f"code sent to ***{number[-4:]}" in sent.text and "--code" in sent.text
    code = webhook.last_code(number)
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    wrong = cli("tool", "verify_caller", "--session", session, "--code", wrong_code)
    assert wrong.code == 1 and "(wrong_code)" in wrong.text, wrong
    assert wrong.stdout == ""
    as_json = cli("tool", "verify_caller", "--session", session, "--code", wrong_code, "--json")
    assert as_json.code == 1, as_json
    error = as_json.json()["error"]
    assert (error["code"], error["status"]) == ("wrong_code", 422)
    assert isinstance(error["attempts_left"], int)
    garbled = cli("tool", "verify_caller", "--session", session, "--code", "12")
    assert garbled.code == 1 and "(invalid_input)" in garbled.text, garbled

    proved = ok(cli, "tool", "verify_caller", "--session", session, "--code", code)
    assert "verified" in proved.text and earlier in proved.text
    # Once proved, the earlier booking is the caller's to see.
    assert earlier in ok(cli, "tool", "retrieve_appointments", "--session", session).text


def test_verify_caller_json_is_the_tool_answer(cli: Invoke, webhook: SmsWebhook) -> None:
    number = phone()
    session = StartSessionResponse.model_validate(
        ok(cli, "session", "start", "--json").json()
    ).session_id
    ok(cli, "tool", "identify_user", "--session", session, "--phone", number)
    sent = VerifyCallerResponse.model_validate(
        ok(cli, "tool", "verify_caller", "--session", session, "--json").json()
    )
    assert (sent.status, sent.level) == ("code_sent", "claimed") and sent.expires_at is not None
    code = webhook.last_code(number)
    proved = VerifyCallerResponse.model_validate(
        ok(cli, "tool", "verify_caller", "--session", session, "--code", code, "--json").json()
    )
    assert (proved.status, proved.level) == ("verified", "verified")


def test_a_trusted_start_or_attestation_needs_the_service_key(
    server: Server, tmp_path: Path
) -> None:
    env = clean_env(VOICEBOOK_URL=server.url)  # no key: what a browser has
    plain = subprocess.run(
        [sys.executable, "-m", "voicebook", "session", "start", "--json"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    session = StartSessionResponse.model_validate_json(plain.stdout).session_id
    for args in (
        ["session", "start", "--phone", phone()],
        ["session", "attest", "--session", session, "--phone", phone()],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "voicebook", *args],
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 2, done
        assert "(unauthorized)" in " ".join(done.stderr.split())
        assert "VOICEBOOK_API_KEY" in done.stderr
