"""Local stand-ins for the two ways a code reaches a phone, on loopback ports of their own.

- `SmsWebhook`: the business's own SMS system, receiving voicebook's signed webhook. It checks
  the signature and the timestamp as a real receiver must, and keeps what it would have texted.
- `TwilioVerifyStandIn`: a paid API that cannot be reached from here, so a local server speaking
  Twilio Verify's documented REST protocol: `POST /v2/Services/{sid}/Verifications` (form `To`,
  `Channel`) and `POST /v2/Services/{sid}/VerificationCheck` (form `To`, `Code`), HTTP basic
  auth with the account SID and auth token, JSON answers with `status` (`pending`, `approved`,
  `max_attempts_reached`), 404 (Twilio error 20404) when no verification is pending, five checks
  per verification, ten minutes of life.

Both record what they were sent, so a test reads the code as the phone's owner would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servers import free_port

B = TypeVar("B", bound="_Background")
MAX_CHECKS = 5
LIFETIME_S = 600


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, as Twilio's API takes its parameters."""
    if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl((await request.body()).decode()))


class _Background:
    """A Starlette app served by uvicorn on a thread, started and stopped by the test."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()))
        self._thread.daemon = True

    def start(self: B) -> B:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the stand-in did not start")
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self: B) -> B:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SmsWebhook(_Background):
    """Receives voicebook's webhook; refuses a bad signature or a stale timestamp with 401."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.texts: list[dict[str, Any]] = []
        self.refused = 0
        super().__init__(Starlette(routes=[Route("/sms", self._receive, methods=["POST"])]))
        self.endpoint = f"{self.url}/sms"

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        stamp = request.headers.get("x-voicebook-timestamp", "")
        given = request.headers.get("x-voicebook-signature", "")
        mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        if not (fresh and hmac.compare_digest(given, "sha256=" + mac.hexdigest())):
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.texts.append(json.loads(body))
        return JSONResponse({"queued": True}, status_code=202)

    def env(self) -> dict[str, str]:
        """The settings that point voicebook's webhook sender here."""
        return {
            "VOICEBOOK_VERIFICATION": "webhook",
            "VOICEBOOK_VERIFICATION_WEBHOOK_URL": self.endpoint,
            "VOICEBOOK_VERIFICATION_WEBHOOK_SECRET": self.secret,
        }

    def last_code(self, phone: str) -> str:
        codes = [t["code"] for t in self.texts if t["phone"] == phone]
        assert codes, f"nothing was texted to {phone[:-4]}****"
        return str(codes[-1])


@dataclass
class _Verification:
    sid: str
    to: str
    code: str
    created: float
    checks: int = 0
    status: str = "pending"


@dataclass
class TwilioAccount:
    sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    service: str = field(default_factory=lambda: "VA" + secrets.token_hex(16))


class TwilioVerifyStandIn(_Background):
    def __init__(self, account: TwilioAccount | None = None) -> None:
        self.account = account or TwilioAccount()
        self._pending: dict[str, _Verification] = {}
        self.texts: list[tuple[str, str]] = []
        base = "/v2/Services/{service}"
        super().__init__(
            Starlette(
                routes=[
                    Route(f"{base}/Verifications", self._start, methods=["POST"]),
                    Route(f"{base}/VerificationCheck", self._check, methods=["POST"]),
                ]
            )
        )

    def env(self) -> dict[str, str]:
        """The settings that point voicebook's Twilio sender here."""
        return {
            "VOICEBOOK_VERIFICATION": "twilio",
            "TWILIO_ACCOUNT_SID": self.account.sid,
            "TWILIO_AUTH_TOKEN": self.account.token,
            "VOICEBOOK_TWILIO_VERIFY_SERVICE_SID": self.account.service,
            "VOICEBOOK_TWILIO_VERIFY_URL": self.url,
        }

    def last_code(self, phone: str) -> str:
        codes = [code for to, code in self.texts if to == phone]
        assert codes, f"nothing was texted to {phone[:-4]}****"
        return codes[-1]

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        body = {"code": code, "message": message, "more_info": "", "status": status}
        return JSONResponse(body, status_code=status)

    def _refusal(self, request: Request) -> JSONResponse | None:
        expected = f"{self.account.sid}:{self.account.token}".encode()
        given = request.headers.get("authorization", "")
        if given != "Basic " + base64.b64encode(expected).decode():
            return self._error(401, 20003, "Authenticate")
        if request.path_params["service"] != self.account.service:
            return self._error(404, 20404, "The requested resource was not found")
        return None

    def _body(self, verification: _Verification) -> dict[str, Any]:
        return {
            "sid": verification.sid,
            "service_sid": self.account.service,
            "account_sid": self.account.sid,
            "to": verification.to,
            "channel": "sms",
            "status": verification.status,
            "valid": verification.status == "approved",
        }

    def _live(self, to: str) -> _Verification | None:
        verification = self._pending.get(to)
        if verification and time.monotonic() - verification.created > LIFETIME_S:
            del self._pending[to]
            return None
        return verification

    async def _start(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        form = await _form(request)
        to, channel = form.get("To", ""), form.get("Channel", "")
        if not to.startswith("+") or channel not in ("sms", "call", "whatsapp", "email"):
            return self._error(400, 60200, "Invalid parameter")
        verification = self._live(to)
        if verification is None:  # a resend within the lifetime keeps the code, as Twilio does
            verification = _Verification(
                "VE" + secrets.token_hex(16), to, f"{secrets.randbelow(10**6):06d}",
                time.monotonic(),
            )  # fmt: skip
            self._pending[to] = verification
        self.texts.append((to, verification.code))
        return JSONResponse(self._body(verification), status_code=201)

    async def _check(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        form = await _form(request)
        to, code = form.get("To", ""), form.get("Code", "")
        verification = self._live(to)
        if verification is None:
            return self._error(404, 20404, "The requested resource was not found")
        verification.checks += 1
        if hmac.compare_digest(code, verification.code):
            verification.status = "approved"
            del self._pending[to]
        elif verification.checks >= MAX_CHECKS:
            verification.status = "max_attempts_reached"
            del self._pending[to]
        return JSONResponse(self._body(verification))
