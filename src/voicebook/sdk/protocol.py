"""The SDK without the I/O: configuration, requests, answers, errors, retries, event-stream state.

`Client` and `AsyncClient` are thin transports over this module: they send the `httpx.Request`
that `Wire.request` builds, hand the answer to `Wire.result` (a wire model, or a typed error
raised), and ask `Wire.retry_wait` how long to sleep before trying again. The event streams keep
their position and retry budget in an `EventCursor`. Nothing here sends, receives or sleeps.
"""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from voicebook import __version__
from voicebook.errors import (
    ConnectionFailed,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    TimedOut,
    UnexpectedResponse,
    VoicebookError,
    error_from_body,
)
from voicebook.models import VERSION_HEADER, Event
from voicebook.sdk.dotenv import environment
from voicebook.sdk.retry import Budget, RetryPolicy, parse_retry_after

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
"""Where `voicebook serve` listens by default."""
DEFAULT_TIMEOUT_S = 10.0
USER_AGENT = f"voicebook-sdk/{__version__}"
STABLE_S = 5.0
"""An event WebSocket that stayed open this long starts a fresh resume budget when it drops."""
DEFAULT_RESUME_FOR_S = 300.0
"""How long an event stream keeps reconnecting through one outage, by default (`resume_for=`)."""
STREAM_BASE_DELAY_S = 0.25
STREAM_MAX_DELAY_S = 5.0
"""The stream's backoff between reconnects: 0.25 s doubling to at most 5 s, half of it jitter."""


def stream_policy(resume_for: float) -> RetryPolicy:
    """The reconnect policy of an event stream that resumes for `resume_for` seconds an outage.

    Its own budget, not the client's request `RetryPolicy`: a server restart that outlasts a
    request's retries does not end a stream."""
    if not resume_for >= 0:  # also refuses NaN
        raise ValueError("resume_for must be a number of seconds (0 or more)")
    return RetryPolicy(
        max_attempts=2**31,
        max_total_s=resume_for,
        base_delay_s=STREAM_BASE_DELAY_S,
        max_delay_s=STREAM_MAX_DELAY_S,
        jitter=0.5,
    )


def _unsendable(value: str) -> tuple[int, str] | None:
    """The position and character of the first character of `value` no HTTP header can carry
    (anything but printable ASCII), or None."""
    for index, char in enumerate(value):
        if not " " <= char <= "~":
            return index, char
    return None


CLOSE_NOT_FOUND = 4404


@dataclass(frozen=True)
class Call(Generic[T]):
    """One logical call: what to send, how to read the answer, and whether it may be repeated.

    `idempotent` says the request may be sent again even when an earlier attempt may have reached
    the server (reads, idempotent ends, and anything carrying an idempotency key). Requests that
    are not idempotent are retried only when the server certainly did not act on them.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    idempotent: bool = False


def resolve_base_url(base_url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`base_url`, else VOICEBOOK_URL, else BACKEND_BASE_URL, else the local default.

    The variables come from `environ`, else the environment over the working directory's `.env`
    (the file the server reads too)."""
    env = environment() if environ is None else environ
    url = (
        base_url or env.get("VOICEBOOK_URL") or env.get("BACKEND_BASE_URL") or DEFAULT_BASE_URL
    ).strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the voicebook URL must start with http:// or https://, not {url!r}")
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise InvalidInput(
            f"The voicebook URL {url!r} cannot be used ({exc}); set base_url= or VOICEBOOK_URL "
            "to the server's address, e.g. http://127.0.0.1:8000.",
            code="invalid_url",
        ) from exc
    if not host:
        raise InvalidInput(
            f"The voicebook URL {url!r} names no host; set base_url= or VOICEBOOK_URL to the "
            "server's address, e.g. http://127.0.0.1:8000.",
            code="invalid_url",
        )
    return url.rstrip("/")


def resolve_api_key(api_key: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """`api_key`, else VOICEBOOK_API_KEY (environment, then `.env`, as for the URL); None (no
    Authorization header) when neither is set."""
    env = environment() if environ is None else environ
    key = api_key if api_key is not None else env.get("VOICEBOOK_API_KEY")
    if key is None:
        return None
    key = key.strip()
    bad = _unsendable(key)
    if bad is not None:
        raise InvalidInput(
            f"The API key has a character an HTTP header cannot carry ({bad[1]!r} at position "
            f"{bad[0]}); set api_key= or VOICEBOOK_API_KEY to the server's service key exactly "
            "(printable ASCII, e.g. the value of VOICEBOOK_API_KEY in the server's .env), not a "
            "placeholder.",
            code="invalid_api_key",
        )
    return key or None


def session_path(session_id: str, *rest: str) -> str:
    return "/".join(("/session", quote(session_id, safe=""), *rest))


def retryable(call: Call[Any], error: VoicebookError) -> bool:
    """Whether `error` is worth another attempt of `call` (given the idempotency of the call)."""
    if not error.transient:
        return False  # configuration, or a refusal that waiting does not lift
    if isinstance(error, RateLimited):
        return True
    if isinstance(error, ServiceUnavailable):
        return error.status == 503 or call.idempotent
    if isinstance(error, ConnectionFailed):
        return call.idempotent or not error.request_sent
    return False


class Wire:
    """A client's fixed settings, and the pure halves of every exchange with the server."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or RetryPolicy()
        self.headers = dict(headers or {})
        for name, value in self.headers.items():
            bad = _unsendable(f"{name}{value}")
            if bad is not None or not name:
                raise InvalidInput(
                    f"The header {name!r} cannot be sent: HTTP headers carry printable ASCII "
                    "only; fix or drop it in headers=.",
                    code="invalid_header",
                )
        self.server_version: str | None = None
        """The version the server last answered with (its X-Voicebook-Version header)."""

    def ws_url(self, path: str) -> str:
        return "ws" + self.base_url.removeprefix("http") + path

    def request(self, call: Call[Any]) -> httpx.Request:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **self.headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        return httpx.Request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            json=call.json,
            headers=headers,
        )

    def result(self, call: Call[T], response: httpx.Response) -> T:
        """The answer as its wire model; raises the typed error of a failure answer."""
        request_id = response.headers.get("x-request-id")
        self.server_version = response.headers.get(VERSION_HEADER, self.server_version)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_success:
            try:
                return call.parse(body)
            except ValidationError as exc:
                raise UnexpectedResponse(
                    f"The answer to {call.method} {call.path} from {self.base_url} is not what "
                    f"this SDK expects ({exc.error_count()} problem(s)); is that a voicebook "
                    "server of a matching version?",
                    status=response.status_code,
                    request_id=request_id,
                ) from exc
        raise error_from_body(
            response.status_code,
            body,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def transport_error(self, call: Call[Any], exc: httpx.TransportError) -> ConnectionFailed:
        """The typed error for a request that got no answer."""
        # Only these guarantee that the request never left: a retry cannot do anything twice.
        unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if isinstance(exc, httpx.TimeoutException) and not unsent:
            error: ConnectionFailed = TimedOut(
                f"The voicebook server at {self.base_url} did not answer {call.method} "
                f"{call.path} in time.",
                url=self.base_url,
            )
        else:
            error = ConnectionFailed(
                f"Could not reach the voicebook server at {self.base_url} "
                f"({type(exc).__name__}: {exc or 'no details'}); is it running, and is "
                "VOICEBOOK_URL (or base_url=) right?",
                url=self.base_url,
            )
        error.request_sent = not unsent
        error.__cause__ = exc
        return error

    def retry_wait(self, call: Call[Any], error: VoicebookError, budget: Budget) -> float | None:
        """Seconds to sleep before retrying `call` after `error`; None: raise `error` now."""
        error.attempts = budget.attempts
        if not retryable(call, error):
            return None
        return budget.next_wait(error.retry_after)


def method_signature(build: Callable[..., Any]) -> inspect.Signature:
    """The signature of the client method made from endpoint builder `build`.

    `self` first, then the builder's parameters; it returns what the builder's `Call[...]` parses
    to (for the async client: what the coroutine returns).
    """
    signature = inspect.signature(build)
    hints = typing.get_type_hints(build)
    returns = typing.get_args(hints.get("return")) or (signature.return_annotation,)
    parameters = [
        param.replace(annotation=hints.get(name, param.annotation))
        for name, param in signature.parameters.items()
    ]
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[this, *parameters], return_annotation=returns[0])


class EventCursor:
    """Where an event stream stands: the last event id delivered, whether it is over, and the
    resume budget of the current outage (`resume_for` seconds, see `stream_policy`; independent
    of the client's request retries). Shared by the sync and the async stream."""

    def __init__(
        self,
        wire: Wire,
        session_id: str,
        after: int | None,
        clock: Callable[[], float] = time.monotonic,
        resume_for: float = DEFAULT_RESUME_FOR_S,
    ) -> None:
        if after is not None and after < 0:
            raise ValueError("after must be an event id (0 or more)")
        self.policy = stream_policy(resume_for)
        self.session_id = session_id
        self.last_id = after or 0
        self.finished = False
        self.connections = 0
        self._wire = wire
        self._clock = clock
        self._budget: Budget | None = None
        self._opened_at: float | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def url(self) -> str:
        """The WebSocket to open now: it resumes after the last event delivered."""
        return self._wire.ws_url(session_path(self.session_id, "events")) + f"?after={self.last_id}"

    def opened(self) -> None:
        self.connections += 1
        self._opened_at = self._clock()

    def accept(self, message: str | bytes) -> Event | None:
        """The event in `message`, or None when it was already delivered."""
        try:
            event = Event.model_validate_json(message)
        except ValidationError as exc:
            raise UnexpectedResponse(
                f"The event stream at {self.url()} sent something that is not an event.",
            ) from exc
        self._budget = None  # events flow again: a later outage gets a fresh budget
        if event.id <= self.last_id:
            return None
        self.last_id = event.id
        self.finished = event.type == "session_closed"
        return event

    def connect_failed(self, exc: BaseException) -> ConnectionFailed:
        error = ConnectionFailed(
            f"Could not open the event stream at {self.url()} "
            f"({type(exc).__name__}: {exc or 'no details'}).",
            url=self._wire.base_url,
        )
        error.__cause__ = exc
        return error

    @staticmethod
    def handshake_final(status: int) -> bool:
        """Whether a refused handshake with `status` is not worth retrying (a 4xx but 429)."""
        return status < 500 and status != 429

    def refused(self, status: int) -> ConnectionFailed:
        """The error for a handshake the server answered with HTTP `status`."""
        return ConnectionFailed(
            f"The server refused the event WebSocket at {self.url()} with HTTP {status}.",
            url=self._wire.base_url,
            status=status,
        )

    def closed(self, code: int | None, reason: str) -> VoicebookError:
        """The error a dropped connection stands for (terminal if `lost` re-raises it)."""
        if code == CLOSE_NOT_FOUND:
            return NotFound(reason or "That session does not exist.", status=404)
        error = ConnectionFailed(
            f"The event stream at {self.url()} was closed "
            f"(code {code if code is not None else 'none'}{': ' + reason if reason else ''}).",
            url=self._wire.base_url,
        )
        error.request_sent = True
        return error

    def lost(self, error: VoicebookError) -> float:
        """The connection failed or dropped: seconds to wait before reconnecting.

        Raises `error` when it is final (e.g. NotFound) or when this outage has lasted longer than
        `resume_for`; the message then says where to resume.
        """
        stable = self._opened_at is not None and self._clock() - self._opened_at >= STABLE_S
        self._opened_at = None
        if stable:
            self._budget = None
        if isinstance(error, NotFound) or not isinstance(error, (ConnectionFailed, RateLimited)):
            raise error
        if self._budget is None:
            # A stream that never connected meets an unreachable server, not an outage: the
            # client's request retries decide, so a wrong URL fails as fast as any call.
            policy = self.policy if self.connections else self._wire.retry
            self._budget = Budget(policy, clock=self._clock)
        self._budget.attempt()
        wait = self._budget.next_wait(error.retry_after)
        if wait is None:
            error.attempts = self._budget.attempts
            budget = (
                f"resume_for={self.policy.max_total_s:g}" if self.connections else "never connected"
            )
            error.message = (
                f"{error.message} Gave up after {self._budget.attempts} attempt(s) in "
                f"{self._budget.elapsed():.1f} s ({budget}); resume with after={self.last_id}."
            )
            error.args = (error.message,)
            raise error
        return wait
