"""Abuse limits: request body size, CORS refusals as JSON, and the browser routes' rate limits.

Every browser route spends from two budgets (DESIGN §3): its client address's and, when it names
one, its session's; starting a session also spends from a budget of starts per address. The
counts live in Redis when VOICEBOOK_REDIS_URL is set, so N workers (or hosts) share them, and in
this process otherwise. They are kept by `limits` (a moving window: exactly N per window).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from voicebook.config import Settings
from voicebook.events import channel_prefix
from voicebook.server.errors import error_payload, error_response
from voicebook.server.observability import Metrics

log = logging.getLogger(__name__)
REDIS_TIMEOUT_S = 0.5
"""A Redis that does not answer within this is treated as down: limits must never hang a reply."""
REDIS_RETRY_S = 5.0
"""After a Redis failure, this process counts on its own for this long before trying again."""


def _error_body(code: str, message: str) -> bytes:
    return json.dumps(error_payload(code, message)).encode()


class BodySizeLimit:
    """ASGI middleware answering 413 for bodies over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = _error_body(
            "payload_too_large", f"The request body is larger than {self.max_bytes} bytes."
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        too_large = started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body overflowed, whatever the app makes of _TooLarge (FastAPI turns it into
            # a 400) is replaced by the 413.
            nonlocal started
            if too_large:
                if not started:
                    started = True
                    await self._reject(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._reject(send)


class _TooLarge(Exception):
    pass


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight is our JSON error, like every answer."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        return error_response(
            response.status_code,
            "cors_refused",
            "This origin, method or header is not allowed to call the API.",
            headers=headers,
        )


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: which budget ran out, and when to come back."""

    retry_after: int
    message: str

    def exception(self) -> HTTPException:
        """429 `rate_limited` with Retry-After, through the app's one error envelope."""
        return HTTPException(429, self.message, headers={"Retry-After": str(self.retry_after)})

    def response(self) -> JSONResponse:
        """The same answer as a response (a WebSocket handshake is refused with it)."""
        return error_response(
            429, "rate_limited", self.message, headers={"Retry-After": str(self.retry_after)}
        )

    async def deny(self, websocket: WebSocket) -> None:
        """Refuse a WebSocket handshake: the same 429 where the server can answer a handshake
        with a response (uvicorn can), else a close with 1013 (try again later)."""
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(self.response())
        else:
            await websocket.close(code=1013, reason=self.message[:120])


_MESSAGES = {
    "address": "Too many requests from this address; please wait a moment.",
    "session": "Too many requests for this session; please wait a moment.",
    "start": "Too many new sessions from this address; please wait a moment.",
    "login": "Too many console sign-in attempts from this address; please wait a minute.",
}
LOGIN_ATTEMPTS_PER_MINUTE = 10
"""Console sign-ins per address and minute: enough for a typo or two, too few to guess."""


def address_key(host: str | None) -> str:
    """The budget an address spends from: IPv6 clients by their /64 (one subscriber's block, so
    rotating addresses inside it gains nothing), anything else as it is."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def session_key(session_id: str) -> str:
    """A session's budget is keyed by a hash: the id is a credential, Redis keys are not secret."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


def redis_storage_url(redis_url: str) -> str:
    """`limits` names its asyncio Redis storage `async+redis://` (`async+rediss://` for TLS)."""
    return "async+" + redis_url


class BrowserLimits:
    """The browser routes' budgets (VOICEBOOK_RATE_LIMIT_PER_ADDRESS, …_PER_SESSION and
    VOICEBOOK_SESSION_RATE_LIMIT), shared through Redis when it is configured.

    When Redis fails, requests are counted in this process for a few seconds (per-worker limits
    still bound abuse) rather than refused or delayed: a rate limit must not become an outage.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.items: dict[str, list[RateLimitItem]] = {
            "address": parse_many(settings.rate_limit_per_address),
            "session": parse_many(settings.rate_limit_per_session),
            "start": [RateLimitItemPerMinute(settings.session_rate_limit)],
            "login": [RateLimitItemPerMinute(LOGIN_ATTEMPTS_PER_MINUTE)],
        }
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if settings.redis_url:
            storage: Storage = RedisStorage(
                redis_storage_url(settings.redis_url),
                implementation="redispy",
                key_prefix=f"{channel_prefix(settings)}limits",  # one deployment's keys
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._shared_down_until = 0.0

    async def hit(self, scope: str, key: str) -> Refusal | None:
        """Spend one request from `scope`'s budget for `key`; a Refusal when it is spent."""
        ids = (scope, key)
        limiter = self._limiter()
        try:
            refused = await self._refused(limiter, self.items[scope], ids)
        except StorageError as error:
            self._shared_down_until = time.monotonic() + REDIS_RETRY_S
            self.metrics.rate_limit_storage_errors.inc()
            log.warning("rate limits counted per process for %.0f s: %s", REDIS_RETRY_S, error)
            refused = await self._refused(self._local, self.items[scope], ids)
        if refused is None:
            return None
        self.metrics.rate_limited.labels(scope).inc()
        return Refusal(refused, _MESSAGES[scope])

    async def hit_websocket(self, websocket: WebSocket, session_id: str) -> Refusal | None:
        """A WebSocket handshake spends from its address's and its session's budgets."""
        address = address_key(websocket.client.host if websocket.client else None)
        return await self.hit("address", address) or await self.hit(
            "session", session_key(session_id)
        )

    def _limiter(self) -> MovingWindowRateLimiter:
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            return self._shared
        return self._local

    @staticmethod
    async def _refused(
        limiter: MovingWindowRateLimiter, items: list[RateLimitItem], ids: tuple[str, str]
    ) -> int | None:
        """Seconds until the first exhausted item allows a request again, or None (all hit)."""
        for item in items:
            if not await limiter.hit(item, *ids):
                stats = await limiter.get_window_stats(item, *ids)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None
