"""`AsyncClient`: the asyncio SDK (httpx.AsyncClient, websockets' asyncio client).

The twin of `voicebook.sdk.client`: same methods made from the same endpoint builders, same
decisions from `voicebook.sdk.protocol`; only sending, receiving and sleeping are awaited here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

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

__all__ = ["AsyncClient", "AsyncEventStream"]

P = ParamSpec("P")
T = TypeVar("T")


def _method(
    build: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """A coroutine method that sends the call `build` makes (signature and docs are build's)."""

    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__qualname__ = f"AsyncClient.{build.__name__}"
    method.__doc__ = build.__doc__
    method.__signature__ = method_signature(build)  # type: ignore[attr-defined]
    return method


class AsyncClient:
    """The voicebook server's API for asyncio; the same methods as `Client`, awaited.

        async with AsyncClient() as vb:           # VOICEBOOK_URL, VOICEBOOK_API_KEY
            session = await vb.start_session()
            async with vb.stream_events(session.session_id) as events:
                async for event in events:
                    ...

    Arguments as for `Client` (`http_client` is an `httpx.AsyncClient`).
    """

    _sleep = staticmethod(asyncio.sleep)

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._wire = Wire(base_url, api_key, timeout=timeout, retry=retry, headers=headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._wire.timeout)

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
        return f"AsyncClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        budget = Budget(self._wire.retry)
        while True:
            budget.attempt()
            try:
                response = await self._http.send(self._wire.request(call))
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
            await self._sleep(wait)

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
    ) -> AsyncEventStream:
        """Follow the session's events live (`WS /session/{id}/events`), from after `after`.

        An async iterator of `Event`s in id order: it replays the log, then yields new events as
        they happen; when the connection drops it reconnects by itself with `?after=<last id>`
        and never yields an event twice; it ends after `session_closed`. Use it with
        `async with` (or call `aclose()`) to release the connection when you stop early;
        `last_id` is where to resume later. (`session_events` is the same log as one list.)

        Resuming has its own budget, independent of the client's `retry` policy: through one
        outage the stream reconnects for up to `resume_for` seconds (default 300), waiting
        0.25 s, 0.5 s, 1 s... at most 5 s between attempts (half of each wait random, so clients
        cut off together do not return together); after that it raises `ConnectionFailed` naming
        the `after=` to resume from. Every event received, or a connection that stayed up 5 s,
        starts a fresh budget for the next outage.
        """
        return AsyncEventStream(self, session_id, after, resume_for=resume_for)


def _close_frame(exc: ConnectionClosed) -> tuple[int | None, str]:
    frame = exc.rcvd
    return (frame.code, frame.reason) if frame is not None else (None, "")


class AsyncEventStream:
    """A session's events over the WebSocket, resumed across reconnections (see
    `AsyncClient.stream_events`)."""

    def __init__(
        self,
        client: AsyncClient,
        session_id: str,
        after: int | None = None,
        *,
        resume_for: float = DEFAULT_RESUME_FOR_S,
    ) -> None:
        self._client = client
        self._cursor = EventCursor(client._wire, session_id, after, resume_for=resume_for)
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

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        cursor = self._cursor
        while not cursor.finished:
            if self._ws is None:
                await self._open()
                continue
            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                await self._disconnect()
                await self._client._sleep(cursor.lost(cursor.closed(*_close_frame(exc))))
                continue
            event = cursor.accept(message)
            if event is not None:
                if cursor.finished:
                    await self.aclose()
                return event
        await self.aclose()
        raise StopAsyncIteration

    async def _open(self) -> None:
        cursor = self._cursor
        while True:
            try:
                self._ws = await connect(
                    cursor.url(),
                    open_timeout=self._client._wire.timeout.connect,
                    user_agent_header=USER_AGENT,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if cursor.handshake_final(status):
                    await self._client.get_session(cursor.session_id)  # unknown: NotFound
                    raise cursor.refused(status) from exc
                error: VoicebookError = cursor.refused(status)
            except (OSError, TimeoutError, asyncio.TimeoutError, WebSocketException) as exc:
                error = cursor.connect_failed(exc)
            else:
                cursor.opened()
                return
            await self._client._sleep(cursor.lost(error))

    async def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def aclose(self) -> None:
        """Close the WebSocket; iterating again reconnects from `last_id`."""
        await self._disconnect()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
