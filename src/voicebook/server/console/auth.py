"""Who may use the console: the operator's sign-in cookie and the CSRF guard on its writes.

The console belongs to the business, not to callers. An operator signs in with the console
password or the service key (`Settings.console_secrets`); the answer is a cookie that is
HttpOnly (no script can read it), SameSite=Strict (no other site's page sends it) and signed
with a key derived from those secrets, so every worker and host checks it without shared state
and changing the password signs everybody out. With no secret configured the console is open,
as the API is then (`voicebook serve` refuses any host but loopback in that case).

Every console write also needs the CSRF token: the value of the readable `voicebook_csrf`
cookie sent back in the `X-CSRF-Token` header (a page of another origin can neither read the
cookie nor set the header without a preflight this server refuses), and a request that says
where it comes from (`Origin`, `Sec-Fetch-Site`) must come from this server itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response, WebSocket
from starlette.requests import HTTPConnection

from voicebook.config import Settings
from voicebook.scheduling.errors import DomainError

SESSION_COOKIE = "voicebook_console"
CSRF_COOKIE = "voicebook_csrf"
CSRF_HEADER = "X-CSRF-Token"
_VERSION = "v1"


class SignInRequired(DomainError):
    code = "sign_in_required"
    status = 401
    default_message = "Sign in to the console with its password or the service key."


class WrongPassword(DomainError):
    code = "wrong_password"
    status = 401
    default_message = (
        "That password is not right: use VOICEBOOK_CONSOLE_PASSWORD or the service key."
    )


class CsrfRefused(DomainError):
    code = "csrf_refused"
    status = 403
    default_message = (
        "This request did not come from the console's own page; reload the console and try again."
    )


def _signing_key(settings: Settings) -> bytes | None:
    """A key only the holder of the secrets can derive (None: no secret, the console is open)."""
    found = settings.console_secrets()
    if not found:
        return None
    material = "\0".join(sorted(found)).encode()
    return hashlib.sha256(b"voicebook-console-cookie\0" + material).digest()


def _sign(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def password_matches(settings: Settings, given: str) -> bool:
    """Whether `given` is one of the console's secrets, each compared in constant time."""
    candidate = given.strip().encode()
    matches = [hmac.compare_digest(candidate, s.encode()) for s in settings.console_secrets()]
    return any(matches)


def issue_cookie(settings: Settings, now: float | None = None) -> tuple[str, int]:
    """A new sign-in cookie value and its lifetime in seconds."""
    key = _signing_key(settings)
    if key is None:
        raise SignInRequired("The console has no password to sign in with.")
    lifetime = int(settings.console_session_hours * 3600)
    expires = int(now if now is not None else time.time()) + lifetime
    body = f"{_VERSION}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_sign(key, body)}", lifetime


def cookie_valid(settings: Settings, value: str | None, now: float | None = None) -> bool:
    """Whether `value` is a sign-in cookie this deployment issued and that has not expired."""
    key = _signing_key(settings)
    if key is None or not value:
        return False
    body, _, signature = value.rpartition(".")
    parts = body.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
        return False
    if not hmac.compare_digest(signature.encode(), _sign(key, body).encode()):
        return False
    return int(parts[1]) > (now if now is not None else time.time())


def login_required(settings: Settings) -> bool:
    return _signing_key(settings) is not None


def signed_in(connection: HTTPConnection) -> bool:
    """Whether this request or WebSocket comes from a signed-in operator (or needs no sign-in)."""
    settings: Settings = connection.app.state.ctx.settings
    if not login_required(settings):
        return True
    return cookie_valid(settings, connection.cookies.get(SESSION_COOKIE))


def _secure(connection: HTTPConnection) -> bool:
    """Cookies are marked Secure when the page was loaded over HTTPS (directly or, from a
    trusted proxy, as uvicorn's proxy headers report it)."""
    return connection.url.scheme in ("https", "wss")


def set_session_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )


def ensure_csrf_cookie(response: Response, request: Request) -> str:
    """The request's CSRF token, set as a cookie first when it has none yet."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(24)
        response.set_cookie(
            CSRF_COOKIE, token, httponly=False, samesite="strict", secure=_secure(request), path="/"
        )
    return token


def same_origin(connection: HTTPConnection) -> bool:
    """Whether a request that names its origin names this server (what it was addressed as).

    Browsers send `Origin` on every cross-origin request and on every WebSocket handshake, and
    `Sec-Fetch-Site` on every request; a client that sends neither is not a browser a page of
    another site could drive.
    """
    fetch_site = connection.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


async def require_operator(request: Request) -> None:
    """A console read: the operator must be signed in (when the console has a password)."""
    if not signed_in(request):
        raise SignInRequired()


async def require_csrf(request: Request) -> None:
    """A console write: from this server's own page, carrying the CSRF token it was given."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie, header):
        raise CsrfRefused()


async def operator_websocket_allowed(websocket: WebSocket) -> bool:
    """A console WebSocket: signed in, and opened by a page of this server (WebSockets have no
    CORS, so the Origin check is the CSRF guard)."""
    return signed_in(websocket) and same_origin(websocket)


async def require_operator_write(request: Request) -> None:
    """A console write: signed in, and from the console's own page (`require_csrf`)."""
    await require_operator(request)
    await require_csrf(request)


Operator = Annotated[None, Depends(require_operator)]
"""A console read's guard, as a parameter type (`_: Operator`) or a router dependency."""
OperatorWrite = Annotated[None, Depends(require_operator_write)]
"""A console write's guard."""
