"""How one-time codes reach a caller's phone (`VOICEBOOK_VERIFICATION`): the `Verifier`s.

- `console`: the code is written to the server's log. For development on loopback only:
  `voicebook serve` refuses it on any other host.
- `webhook`: signed JSON to the business's own SMS system. The body is
  `{"phone", "code", "expires_at", "message"}`; `X-Voicebook-Timestamp` is the Unix time and
  `X-Voicebook-Signature` is `sha256=` + hex HMAC-SHA256 of `"<timestamp>.<body>"` with
  VOICEBOOK_VERIFICATION_WEBHOOK_SECRET, so the receiver can tell it came from voicebook and is
  fresh. Any 2xx answer counts as delivered.
- `twilio`: Twilio Verify's REST API, which makes, sends and checks the code itself
  (`POST /v2/Services/{sid}/Verifications`, `POST /v2/Services/{sid}/VerificationCheck`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime

import httpx

from voicebook.config import ConfigError, Settings
from voicebook.scheduling.identity import Verifier
from voicebook.scheduling.phone import mask_phone

log = logging.getLogger(__name__)
TIMEOUT = httpx.Timeout(4.0, connect=2.0)
"""A provider gets a few seconds: a caller is waiting on the line."""


def code_message(code: str, business: str = "voicebook") -> str:
    return f"Your {business} verification code is {code}. It expires in a few minutes."


class ConsoleSender:
    """Writes the code to the server log (development only)."""

    hosted = False

    async def send(self, phone: str, code: str | None, expires_at: datetime) -> None:
        log.warning("verification code for %s: %s (console sender)", mask_phone(phone), code)

    async def check(self, phone: str, code: str) -> bool:  # pragma: no cover - never asked
        raise NotImplementedError


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: what `X-Voicebook-Signature` carries for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookSender:
    """POSTs each code, signed, to the business's own SMS system."""

    hosted = False

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self._secret = secret

    async def send(self, phone: str, code: str | None, expires_at: datetime) -> None:
        assert code is not None
        body = json.dumps(
            {
                "phone": phone,
                "code": code,
                "expires_at": expires_at.isoformat(),
                "message": code_message(code),
            },
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Voicebook-Timestamp": timestamp,
            "X-Voicebook-Signature": webhook_signature(self._secret, timestamp, body),
        }
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.post(self.url, content=body, headers=headers)
        answer.raise_for_status()

    async def check(self, phone: str, code: str) -> bool:  # pragma: no cover - never asked
        raise NotImplementedError


class TwilioVerify:
    """Twilio Verify: Twilio makes the code, texts it and checks it."""

    hosted = True

    def __init__(self, base_url: str, account_sid: str, auth_token: str, service_sid: str) -> None:
        self._service = f"{base_url.rstrip('/')}/v2/Services/{service_sid}"
        self._auth = (account_sid, auth_token)

    async def send(self, phone: str, code: str | None, expires_at: datetime) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT, auth=self._auth) as client:
            answer = await client.post(
                f"{self._service}/Verifications", data={"To": phone, "Channel": "sms"}
            )
        answer.raise_for_status()

    async def check(self, phone: str, code: str) -> bool:
        async with httpx.AsyncClient(timeout=TIMEOUT, auth=self._auth) as client:
            answer = await client.post(
                f"{self._service}/VerificationCheck", data={"To": phone, "Code": code}
            )
        if answer.status_code == 404:  # no pending verification: expired, used or too many tries
            return False
        answer.raise_for_status()
        return answer.json().get("status") == "approved"


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value or "").strip()


def missing_verification_settings(settings: Settings) -> list[str]:
    """The variables the configured sender still needs (empty when it can run)."""
    if settings.verification == "webhook":
        required = {
            "VOICEBOOK_VERIFICATION_WEBHOOK_URL": settings.verification_webhook_url,
            "VOICEBOOK_VERIFICATION_WEBHOOK_SECRET": _secret(settings.verification_webhook_secret),
        }
    elif settings.verification == "twilio":
        required = {
            "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": _secret(settings.twilio_auth_token),
            "VOICEBOOK_TWILIO_VERIFY_SERVICE_SID": settings.twilio_verify_service_sid,
        }
    else:
        return []
    return [name for name, value in required.items() if not value]


def create_verifier(settings: Settings) -> Verifier | None:
    """The configured sender; None when verification is off. Raises ConfigError naming every
    missing variable."""
    missing = missing_verification_settings(settings)
    if missing:
        raise ConfigError(
            f"VOICEBOOK_VERIFICATION={settings.verification} needs " + ", ".join(missing) + "."
        )
    if settings.verification == "off":
        return None
    if settings.verification == "webhook":
        assert settings.verification_webhook_url is not None
        return WebhookSender(
            settings.verification_webhook_url, _secret(settings.verification_webhook_secret)
        )
    if settings.verification == "twilio":
        assert settings.twilio_account_sid and settings.twilio_verify_service_sid
        return TwilioVerify(
            settings.twilio_verify_url,
            settings.twilio_account_sid,
            _secret(settings.twilio_auth_token),
            settings.twilio_verify_service_sid,
        )
    return ConsoleSender()
