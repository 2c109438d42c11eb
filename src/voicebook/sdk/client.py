"""`Client`: the synchronous SDK (httpx for HTTP, websockets' sync client for the event stream).

All decisions — what to send, how to read the answer, which error it is, whether and how long to
wait before retrying, where an event stream resumes — are made in `voicebook.sdk.protocol`,
`voicebook.sdk.endpoints` and `voicebook.sdk.retry`; this module only sends, receives and sleeps.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from voicebook.errors import VoicebookError
from voicebook.models import Event
from voicebook.sdk import endpoints
from voicebook.sdk.protocol import (
    DEFAULT_RESUME_FOR_S,
    DEFAULT_TIMEOUT_S,
    USER_AGENT,
    Call,
    EventCursor,
    Wire,
    method_signature,
)
from voicebook.sdk.retry import Budget, RetryPolicy

__all__ = ["Client", "EventStream"]

P = ParamSpec("P")
T = TypeVar("T")


def _method(build: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    """A client method that sends the call `build` makes (its signature and docs are build's)."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__qualname__ = f"Client.{build.__name__}"
    method.__doc__ = build.__doc__
    method.__signature__ = method_signature(build)  # type: ignore[attr-defined]
    return method


class Client:
    """The voicebook server's API, synchronously.

        with Client() as vb:                      # VOICEBOOK_URL, VOICEBOOK_API_KEY
            session = vb.start_session()
            vb.identify_user(session.session_id, phone="+1 415 555 0123")
            slots = vb.fetch_slots(session.session_id, limit=3).slots
            vb.book_appointment(session.session_id, slot_id=slots[0].slot_id)

    - `base_url`: else VOICEBOOK_URL, else BACKEND_BASE_URL, else http://127.0.0.1:8000.
    - `api_key`: the service key (VOICEBOOK_API_KEY by default), sent as a bearer token.
    - `timeout`: seconds per attempt (or an `httpx.Timeout`); `None` waits forever.
    - `retry`: a `RetryPolicy` (default 5 attempts within 30 s); `NO_RETRY` turns retries off.
    - `headers`: extra headers on every request; `http_client`: your own `httpx.Client` (its
      timeouts and transport are used; it is not closed by `close()`).

    Every method raises a `voicebook.errors.VoicebookError` subclass on failure.
    """

    _sleep = staticmethod(time.sleep)

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._wire = Wire(base_url, api_key, timeout=timeout, retry=retry, headers=headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self._wire.timeout)

    @property
    def base_url(self) -> str:
        return self._wire.base_url

    @property
    def retry(self) -> RetryPolicy:
        return self._wire.retry

    @property
    def server_version(self) -> str | None:
        """The server's version as its last answer (errors too) gave it; None before the first
        call or from a server too old to say. `health()` returns it as well."""
        return self._wire.server_version

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        budget = Budget(self._wire.retry)
        while True:
            budget.attempt()
            try:
                response = self._http.send(self._wire.request(call))
            except httpx.TransportError as exc:
                error: VoicebookError = self._wire.transport_error(call, exc)
            else:
                try:
                    return self._wire.result(call, response)
                except VoicebookError as exc:
                    error = exc
            wait = self._wire.retry_wait(call, error, budget)
            if wait is None:
                raise error
            self._sleep(wait)

    start_session = _method(endpoints.start_session)
    get_session = _method(endpoints.get_session)
    end_session = _method(endpoints.end_session)
    attest_caller = _method(endpoints.attest_caller)
    livekit_token = _method(endpoints.livekit_token)
    session_tools = _method(endpoints.session_tools)
    session_events = _method(endpoints.session_events)
    identify_user = _method(endpoints.identify_user)
    verify_caller = _method(endpoints.verify_caller)
    fetch_slots = _method(endpoints.fetch_slots)
    book_appointment = _method(endpoints.book_appointment)
    retrieve_appointments = _method(endpoints.retrieve_appointments)
    cancel_appointment = _method(endpoints.cancel_appointment)
    modify_appointment = _method(endpoints.modify_appointment)
    end_conversation = _method(endpoints.end_conversation)
    call_tool = _method(endpoints.call_tool)
    report = _method(endpoints.report)
    business_appointments = _method(endpoints.business_appointments)
    health = _method(endpoints.health)
    ready = _method(endpoints.ready)

    def stream_events(
        self,
        session_id: str,
        after: int | None = None,
        *,
        resume_for: float = DEFAULT_RESUME_FOR_S,
    ) -> EventStream:
        """Follow the session's events live (`WS /session/{id}/events`), from after `after`.

        An iterator of `Event`s in id order: it replays the log, then yields new events as they
        happen; when the connection drops it reconnects by itself with `?after=<last id>` and
        never yields an event twice; it ends after `session_closed`. Use it as a context manager
        (or call `close()`) to release the connection when you stop early; `last_id` is where to
        resume later. (`session_events` is the same log as one list, over HTTP.)

        Resuming has its own budget, independent of the client's `retry` policy: through one
        outage the stream reconnects for up to `resume_for` seconds (default 300), waiting
        0.25 s, 0.5 s, 1 s... at most 5 s between attempts (half of each wait random, so clients
        cut off together do not return together); after that it raises `ConnectionFailed` naming
        the `after=` to resume from. Every event received, or a connection that stayed up 5 s,
        starts a fresh budget for the next outage.
        """
        return EventStream(self, session_id, after, resume_for=resume_for)


def _close_frame(exc: ConnectionClosed) -> tuple[int | None, str]:
    frame = exc.rcvd
    return (frame.code, frame.reason) if frame is not None else (None, "")


class EventStream:
    """A session's events over the WebSocket, resumed across reconnections (see
    `Client.stream_events`)."""

    def __init__(
        self,
        client: Client,
        session_id: str,
        after: int | None = None,
        *,
        resume_for: float = DEFAULT_RESUME_FOR_S,
    ) -> None:
        self._client = client
        self._cursor = EventCursor(client._wire, session_id, after, resume_for=resume_for)
        self._stack: contextlib.ExitStack | None = None
        self._ws: ClientConnection | None = None

    @property
    def session_id(self) -> str:
        return self._cursor.session_id

    @property
    def last_id(self) -> int:
        """The id of the last event yielded (or the `after` it started from)."""
        return self._cursor.last_id

    @property
    def reconnects(self) -> int:
        """How many times the stream had to open its WebSocket again."""
        return self._cursor.reconnects

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        cursor = self._cursor
        while not cursor.finished:
            if self._ws is None:
                self._open()
                continue
            try:
                message = self._ws.recv()
            except ConnectionClosed as exc:
                self._disconnect()
                self._client._sleep(cursor.lost(cursor.closed(*_close_frame(exc))))
                continue
            event = cursor.accept(message)
            if event is not None:
                if cursor.finished:
                    self.close()
                return event
        self.close()
        raise StopIteration

    def _open(self) -> None:
        cursor = self._cursor
        while True:
            stack = contextlib.ExitStack()
            try:
                self._ws = stack.enter_context(
                    connect(
                        cursor.url(),
                        open_timeout=self._client._wire.timeout.connect,
                        user_agent_header=USER_AGENT,
                    )
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if cursor.handshake_final(status):
                    self._client.get_session(cursor.session_id)  # unknown session: NotFound
                    raise cursor.refused(status) from exc
                error: VoicebookError = cursor.refused(status)
            except (OSError, TimeoutError, WebSocketException) as exc:
                error = cursor.connect_failed(exc)
            else:
                self._stack = stack
                cursor.opened()
                return
            self._client._sleep(cursor.lost(error))

    def _disconnect(self) -> None:
        stack, self._stack, self._ws = self._stack, None, None
        if stack is not None:
            stack.close()

    def close(self) -> None:
        """Close the WebSocket; iterating again reconnects from `last_id`."""
        self._disconnect()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
