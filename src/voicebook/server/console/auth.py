"""Who may use the console: the operator's sign-in cookie and the CSRF guard on its writes.

The console belongs to the business, not to callers. An operator signs in with their own
account (name and password, `accounts.py`), the console password or the service key
(`Settings.console_secrets`); once an account exists the console password no longer signs in.
The answer is a cookie that is HttpOnly (no script can read it), SameSite=Strict (no other
site's page sends it) and signed with a key derived from those secrets, so every worker and host
checks it without shared state and changing the password signs everybody out. It says how its
holder signed in; an account's also names the account and carries a stamp of its password hash,
checked against the database on each request, so a new password or a removed account ends its
sign-ins at once. With no secret configured the console is open, as the API is then (`voicebook
serve` refuses any host but loopback in that case).

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
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from starlette.requests import HTTPConnection

from voicebook.config import Settings
from voicebook.scheduling.errors import DomainError
from voicebook.server.console.accounts import stamp

SESSION_COOKIE = "voicebook_console"
CSRF_COOKIE = "voicebook_csrf"
CSRF_HEADER = "X-CSRF-Token"
_VERSION = "v2"

Via = Literal["open", "service_key", "password", "account"]
_VIAS: tuple[Via, ...] = ("service_key", "password", "account")


@dataclass(frozen=True)
class SignedIn:
    """Who a console request comes from: how they signed in, and their account if they used
    one (`account` names what they change; the others change things as the business)."""

    via: Via
    account: str | None = None


@dataclass(frozen=True)
class CookieClaim:
    """What a genuine, unexpired sign-in cookie says (an account's still to be checked against
    the database: `SignedIn` is only given once it is)."""

    via: Via
    account: str | None = None
    stamp: str | None = None


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


class WrongAccount(DomainError):
    code = "wrong_password"
    status = 401
    default_message = (
        "That name and password do not match an account of this console; check both, or ask "
        "whoever runs voicebook to set a new password (`voicebook operators password`)."
    )


class AccountRequired(DomainError):
    code = "account_required"
    status = 401
    default_message = (
        "This console has operator accounts: sign in with your own name and password (the "
        "shared console password no longer signs in)."
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


def which_secret(settings: Settings, given: str) -> Via | None:
    """Which of the console's secrets `given` is ("service_key" or "password"), each compared in
    constant time; None for neither."""
    candidate = given.strip().encode()
    key, password = settings.service_key(), settings.console_password_value()
    key_matches = key is not None and hmac.compare_digest(candidate, key.encode())
    password_matches = password is not None and hmac.compare_digest(candidate, password.encode())
    if key_matches:
        return "service_key"
    return "password" if password_matches else None


def issue_cookie(
    settings: Settings,
    via: Via,
    account: tuple[str, str] | None = None,
    now: float | None = None,
) -> tuple[str, int]:
    """A new sign-in cookie value and its lifetime in seconds; `account` is (name, password
    hash) for a sign-in to an account."""
    key = _signing_key(settings)
    if key is None:
        raise SignInRequired("The console has no password to sign in with.")
    lifetime = int(settings.console_session_hours * 3600)
    expires = int(now if now is not None else time.time()) + lifetime
    name, hashed = account if account is not None else ("-", None)
    body = ".".join(
        (_VERSION, str(expires), secrets.token_urlsafe(12), via, stamp(hashed) if hashed else "-")
    )
    body = f"{body}.{name}"  # last: an account's name may hold dots
    return f"{body}.{_sign(key, body)}", lifetime


def read_cookie(
    settings: Settings, value: str | None, now: float | None = None
) -> CookieClaim | None:
    """What `value` says when it is a sign-in cookie this deployment issued and it has not
    expired; None otherwise."""
    key = _signing_key(settings)
    if key is None or not value:
        return None
    body, _, signature = value.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(key, body).encode()):
        return None
    parts = body.split(".", 5)
    if len(parts) != 6 or parts[0] != _VERSION or not parts[1].isdigit():
        return None
    _, expires, _, via, account_stamp, name = parts
    if int(expires) <= (now if now is not None else time.time()) or via not in _VIAS:
        return None
    if via == "account":
        return CookieClaim("account", name, account_stamp)
    return CookieClaim(via)  # type: ignore[arg-type]


def login_required(settings: Settings) -> bool:
    return _signing_key(settings) is not None


async def signed_in_as(connection: HTTPConnection) -> SignedIn | None:
    """Who this request or WebSocket comes from (None: nobody signed in). An account's cookie
    holds while its account exists with the password it signed in with; the console password's
    while no account exists."""
    ctx = connection.app.state.ctx
    settings: Settings = ctx.settings
    if not login_required(settings):
        return SignedIn("open")
    claim = read_cookie(settings, connection.cookies.get(SESSION_COOKIE))
    if claim is None:
        return None
    if claim.via == "service_key":
        return SignedIn("service_key")
    async with ctx.store.transaction(write=False) as tx:
        if claim.via == "password":
            return None if await tx.any_operator() else SignedIn("password")
        record = await tx.get_operator(claim.account or "")
    if record is None or not hmac.compare_digest(stamp(record.password_hash), claim.stamp or ""):
        return None
    return SignedIn("account", record.name)


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


async def require_operator(request: Request) -> SignedIn:
    """A console read: the operator must be signed in (when the console has a password)."""
    who = await signed_in_as(request)
    if who is None:
        raise SignInRequired()
    return who


async def require_csrf(request: Request) -> None:
    """A console write: from this server's own page, carrying the CSRF token it was given."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie, header):
        raise CsrfRefused()


async def require_operator_write(request: Request) -> SignedIn:
    """A console write: signed in, and from the console's own page (`require_csrf`)."""
    who = await require_operator(request)
    await require_csrf(request)
    return who


Operator = Annotated[SignedIn, Depends(require_operator)]
"""A console read's guard, as a parameter (`who: Operator`) or a router dependency."""
OperatorWrite = Annotated[SignedIn, Depends(require_operator_write)]
"""A console write's guard; `who.account` names the account making the change, if any."""
