"""The trust model through the public surface: real `voicebook serve` processes over HTTP.

Codes go out through the real senders: the webhook sender to a local receiver that checks its
signature (the business's SMS system), and the Twilio sender to a local server speaking Twilio
Verify's documented protocol (tests/sms.py). A second session claiming a first caller's number
learns nothing from any answer, event or page; a back-end's trusted start and the agent's SIP
attestation need the service key.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server, clean_env, free_port, running_server
from sms import SmsWebhook, TwilioVerifyStandIn

API_KEY = "trust-service-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ANN = "+14155550123"
NINE_AM = "2027-03-02T09:00:00-05:00"
BASE_ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_HORIZON_DAYS": "730",
    "VOICEBOOK_SESSION_RATE_LIMIT": "1000",
}


@pytest.fixture(scope="module")
def webhook() -> Iterator[SmsWebhook]:
    with SmsWebhook(secret="webhook-secret-" + secrets.token_hex(8)) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioVerifyStandIn]:
    with TwilioVerifyStandIn() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def webhook_server(
    webhook: SmsWebhook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("trust-webhook")
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}",
        **webhook.env(),
    }
    with running_server(env, directory) as server:
        yield server


@pytest.fixture(scope="module")
def twilio_server(
    twilio: TwilioVerifyStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("trust-twilio")
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}",
        **twilio.env(),
    }
    with running_server(env, directory) as server:
        yield server


class Caller:
    """One session, driven as the agent drives it (service key, a fresh key per call)."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=15)
        started = self.http.post("/session/start")
        assert started.status_code == 200, started.text
        self.session_id: str = started.json()["session_id"]

    def tool(self, tool: str, /, **args: Any) -> httpx.Response:
        return self.http.post(
            f"/tools/{tool}",
            json={"session_id": self.session_id, **args},
            headers={**AUTH, "Idempotency-Key": "call_" + secrets.token_hex(8)},
        )

    def ok(self, tool: str, /, **args: Any) -> dict[str, Any]:
        answer = self.tool(tool, **args)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def refused(self, tool: str, /, **args: Any) -> dict[str, Any]:
        answer = self.tool(tool, **args)
        assert answer.status_code >= 400, answer.text
        return {"status": answer.status_code, **answer.json()["error"]}

    def page(self) -> str:
        """Everything this session's page can read: the event log, the tools list, the state."""
        parts = [
            self.http.get(f"/session/{self.session_id}/events").text,
            self.http.get(f"/session/{self.session_id}/tools").text,
            self.http.get(f"/session/{self.session_id}").text,
        ]
        return "\n".join(parts)

    def close(self) -> None:
        self.http.close()


def _phone(seed: int) -> str:
    """A distinct valid US number per test, so tests sharing a server never share a caller."""
    return f"+1415555{seed:04d}"


def _flow(server: Server, read_code: Any, phone: str) -> None:
    """Owner books with a private note; a stranger claims the number, is refused everything,
    then proves the number with the code that was texted and sees the booking."""
    owner = Caller(server)
    owner.ok("identify_user", phone=phone, name="Ann Lee")
    owner.ok("verify_caller")
    assert owner.ok("verify_caller", code=read_code(phone))["status"] == "verified"
    booked = owner.ok("book_appointment", start=NINE_AM, notes="knee surgery follow-up")
    appointment_id = booked["appointment"]["id"]
    owner.ok("end_conversation")

    stranger = Caller(server)
    who = stranger.ok("identify_user", phone=phone, name="Mallory")
    assert who["upcoming"] == [] and who["verification_required"] is True
    assert who["user"]["name"] == "Mallory"
    listed = stranger.ok("retrieve_appointments", include_past=True)
    assert listed["appointments"] == []
    cancel = stranger.refused("cancel_appointment", appointment_id=appointment_id)
    assert (cancel["status"], cancel["code"]) == (403, "verification_required")
    page = stranger.page()
    for secret in ("Ann Lee", "knee surgery", "9:00 AM"):
        assert secret not in page

    stranger.ok("verify_caller")
    code = read_code(phone)
    wrong = stranger.refused("verify_caller", code=f"{(int(code) + 1) % 10**6:06d}")
    assert wrong["code"] == "wrong_code" and wrong["attempts_left"] == 4
    proved = stranger.ok("verify_caller", code=code)
    # Proved, the number is theirs: the name they gave is now the stored one.
    assert proved["level"] == "verified" and proved["user"]["name"] == "Mallory"
    assert [a["id"] for a in proved["upcoming"]] == [appointment_id]
    assert (
        stranger.ok("cancel_appointment", appointment_id=appointment_id)["appointment"]["status"]
        == "cancelled"
    )
    state = stranger.http.get(f"/session/{stranger.session_id}").json()
    assert state["identity_level"] == "verified"
    owner.close()
    stranger.close()


def test_webhook_sender_end_to_end(webhook_server: Server, webhook: SmsWebhook) -> None:
    _flow(webhook_server, webhook.last_code, _phone(1001))
    assert webhook.refused == 0
    text = webhook.texts[-1]
    assert set(text) >= {"phone", "code", "expires_at", "message"}
    assert text["code"] in text["message"]
    # The code and the number never reach the server's own log.
    log = webhook_server.log()
    assert text["code"] not in log and text["phone"] not in log


def test_twilio_verify_end_to_end(twilio_server: Server, twilio: TwilioVerifyStandIn) -> None:
    _flow(twilio_server, twilio.last_code, _phone(1002))


def test_twilio_wrong_codes_are_limited(twilio_server: Server, twilio: TwilioVerifyStandIn) -> None:
    phone = _phone(1003)
    caller = Caller(twilio_server)
    caller.ok("identify_user", phone=phone)
    caller.ok("verify_caller")
    code = twilio.last_code(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [caller.refused("verify_caller", code=wrong)["code"] for _ in range(6)]
    assert answers == ["wrong_code"] * 4 + ["too_many_attempts"] * 2
    assert caller.refused("verify_caller", code=code)["code"] == "too_many_attempts"
    caller.close()


def test_an_unreachable_sms_system_is_a_spoken_503(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}",
        "VOICEBOOK_VERIFICATION": "webhook",
        "VOICEBOOK_VERIFICATION_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/sms",
        "VOICEBOOK_VERIFICATION_WEBHOOK_SECRET": "webhook-secret",
    }
    with running_server(env, tmp_path) as server:
        caller = Caller(server)
        caller.ok("identify_user", phone=_phone(1004))
        refusal = caller.refused("verify_caller")
        assert (refusal["status"], refusal["code"]) == (503, "verification_unavailable")
        assert "127.0.0.1" not in refusal["message"]
        # The caller may still book.
        assert caller.ok("book_appointment", start=NINE_AM)["appointment"]["status"] == "confirmed"
        caller.close()


def test_a_trusted_start_needs_the_service_key(webhook_server: Server) -> None:
    with httpx.Client(base_url=webhook_server.url, timeout=10) as http:
        refused = http.post("/session/start", json={"phone": "(415) 555-2001", "name": "Ann"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        wrong = http.post(
            "/session/start",
            json={"phone": "(415) 555-2001"},
            headers={"Authorization": "Bearer not-the-key"},
        )
        assert wrong.status_code == 401
        anonymous = http.post("/session/start")  # the browser's start is unchanged
        assert anonymous.status_code == 200 and anonymous.json()["identity_level"] is None

        trusted = http.post(
            "/session/start", json={"phone": "(415) 555-2001", "name": "Ann"}, headers=AUTH
        )
        assert trusted.status_code == 200, trusted.text
        body = trusted.json()
        assert body["identity_level"] == "trusted"
        assert body["user"]["phone_masked"] == "***2001" and body["user"]["name"] == "Ann"
        state = http.get(f"/session/{body['session_id']}").json()
        assert state["identity_level"] == "trusted" and "+1415" not in json.dumps(state)


def test_sip_attestation_needs_the_service_key_and_fixes_the_caller(
    webhook_server: Server,
) -> None:
    caller = Caller(webhook_server)
    path = f"/session/{caller.session_id}/caller"
    body = {"phone": _phone(2002)}
    assert caller.http.post(path, json=body).status_code == 401
    attested = caller.http.post(path, json=body, headers=AUTH)
    assert attested.status_code == 200, attested.text
    assert attested.json()["identity_level"] == "trusted"
    who = caller.ok("identify_user")
    assert who["level"] == "trusted" and who["user"]["phone_masked"] == "***2002"
    fixed = caller.refused("identify_user", phone=_phone(2003))
    assert (fixed["status"], fixed["code"]) == (409, "caller_fixed")
    bad = caller.http.post(path, json={"phone": "not a number"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_phone"
    events = caller.http.get(f"/session/{caller.session_id}/events").json()
    attests = [e for e in events if e["payload"].get("name") == "attest_caller"]
    assert len(attests) == 1 and _phone(2002) not in json.dumps(events)
    caller.close()


def _serve(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`voicebook serve` that must refuse to start (it would otherwise block: bounded wait)."""
    return subprocess.run(
        [sys.executable, "-m", "voicebook", "serve", "--port", str(free_port()), *args],
        env=clean_env({"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'v.db'}", **env}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_the_console_sender_on_a_public_host(tmp_path: Path) -> None:
    refused = _serve({"VOICEBOOK_API_KEY": API_KEY}, tmp_path, "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert "VOICEBOOK_VERIFICATION" in refused.stderr + refused.stdout


def test_serve_names_what_a_sender_is_missing(tmp_path: Path) -> None:
    refused = _serve({"VOICEBOOK_VERIFICATION": "twilio"}, tmp_path)
    assert refused.returncode == 2
    output = refused.stderr + refused.stdout
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "VOICEBOOK_TWILIO_VERIFY_SERVICE_SID"):
        assert name in output


def test_verification_off_serves_on_a_public_host_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    env = {"VOICEBOOK_API_KEY": API_KEY, "VOICEBOOK_VERIFICATION": "off"}
    with running_server(env, tmp_path, args=("--host", "0.0.0.0"), port=port) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "VOICEBOOK_VERIFICATION=off" in server.log()
