"""`WS /session/{id}/events`: replay the log (or what follows `?after=`), then stream new events.

Only the log reaches the page. The subscription is taken before the log is read, so no news is
missed in between; news ("events up to id N exist") makes the socket read the log after the last
id it sent, so every event goes out once, in order, whatever the bus delivers, repeats, loses or
is made to say. With no news for `RESYNC_S` the log is read anyway, so an event whose news was
lost still arrives.

Limits, so one client cannot hold resources or slow anyone: a frame the client does not take
within `SEND_TIMEOUT_S` means it stopped reading, and it is closed with 1013 (it resumes with
`?after=<last id it has>`); a session has at most `VOICEBOOK_WEBSOCKETS_PER_SESSION` sockets per
worker (more are closed with 4429); the page has nothing to say, so a message from it longer than
`MAX_INBOUND_BYTES` closes the socket with 1009 (`voicebook serve` also caps frames there).

After `session_closed` the client closes: the page ends its call a moment later, closes the
socket and shows "Session ended"; a server that closed first would make it show
"disconnected, tap Connect to start" in between. A client that does not close is closed with 1000
after `VOICEBOOK_WEBSOCKET_LINGER_S`.

Per connection there is one reader loop and two helper tasks (client watcher, resync timer);
nothing is created per event, and sockets woken together share their read of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voicebook.events import Subscription, TooManySubscribers
from voicebook.events.base import ANY_EVENT
from voicebook.scheduling.errors import DomainError, SessionNotFound
from voicebook.server.browser import MAX_EVENT_ID, SESSION_ID, envelope_json
from voicebook.server.context import ServerContext
from voicebook.store.base import EventRecord

log = logging.getLogger(__name__)
router = APIRouter()
RESYNC_S = 15.0
PAGE = 500
SEND_TIMEOUT_S = 5.0
"""A frame not taken by the client in this long (its buffers are full): it stopped reading."""
CLOSE_GRACE_S = 30.0
"""How long a closing handshake may wait for a stalled client before the socket is left to
uvicorn (the close frame goes out as soon as the client reads again)."""
MAX_INBOUND_BYTES = 4096
"""Largest message accepted from the page (which sends none); uvicorn's `ws_max_size` too."""
CLOSE_SLOW = 1013
CLOSE_TOO_BIG = 1009
CLOSE_RETRY = 1011
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429


class SlowReader(Exception):
    """The client stopped taking frames."""


_reads: dict[tuple[int, str, int], asyncio.Future[list[EventRecord]]] = {}
"""Log reads in flight, by (service, session, after id)."""


async def read_log(ctx: ServerContext, session_id: str, after: int) -> list[EventRecord]:
    """A page of the log after `after`: one query however many sockets ask at once.

    News wakes every socket of a session together, most of them at the same id, so they share
    the read, and with it the records, whose encoded form is cached: five hundred pages told of
    one event cost one query and one encoding. One socket leaving does not cancel the others'.
    """
    key = (id(ctx.service), session_id, after)
    read = _reads.get(key)
    if read is None:
        read = asyncio.ensure_future(ctx.service.session_events(session_id, after, PAGE))
        _reads[key] = read
        read.add_done_callback(lambda done: _forget(key, done))
    return await asyncio.shield(read)


def _forget(key: tuple[int, str, int], done: asyncio.Future[list[EventRecord]]) -> None:
    del _reads[key]
    if not done.cancelled():
        done.exception()  # retrieved here too: the waiters may all have gone


class _Stream:
    def __init__(self, websocket: WebSocket, ctx: ServerContext, session_id: str, after: int):
        self.ws = websocket
        self.ctx = ctx
        self.session_id = session_id
        self.last = after
        self.closed = False
        self.left = asyncio.Event()
        """Set when the client has gone (or said too much)."""
        self.too_big = False
        self.read_at = time.monotonic()

    async def send(self, event: EventRecord) -> None:
        if event.id <= self.last:
            return
        try:
            await asyncio.wait_for(self.ws.send_text(envelope_json(event)), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise SlowReader from None
        self.last = event.id
        self.closed = self.closed or event.type == "session_closed"

    async def catch_up(self, news: int = 0) -> None:
        """Send every logged event after `last`, a page at a time; `news` is the id the bus
        spoke of (0: none, or `ANY_EVENT`)."""
        self.read_at = time.monotonic()
        shared = True
        while True:
            if shared:
                events = await read_log(self.ctx, self.session_id, self.last)
            else:
                events = await self.ctx.service.session_events(self.session_id, self.last, PAGE)
            for event in events:
                await self.send(event)
            if len(events) == PAGE:
                continue
            if shared and self.last < news < ANY_EVENT:
                # The shared read may have begun before that event committed: read again, alone
                # (if the log still lacks it, the news was false, and nothing is sent).
                shared = False
                continue
            return


async def _watch_client(stream: _Stream, subscription: Subscription) -> None:
    """Flag the stream and wake its reader when the client leaves or says too much (what it
    says is otherwise ignored)."""
    with contextlib.suppress(WebSocketDisconnect):
        while (message := await stream.ws.receive())["type"] != "websocket.disconnect":
            data = message.get("text") or message.get("bytes") or ""
            if len(data) > MAX_INBOUND_BYTES:
                stream.too_big = True
                break
    stream.left.set()
    subscription.wake()


async def _resync_timer(subscription: Subscription) -> None:
    while True:
        await asyncio.sleep(RESYNC_S)
        subscription.wake()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close, waiting a bounded time for a client that is not reading to take the frame."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, asyncio.TimeoutError):
        await asyncio.wait_for(websocket.close(code=code, reason=reason), CLOSE_GRACE_S)


async def _stream(stream: _Stream, subscription: Subscription) -> tuple[int, str] | None:
    """Replay, then follow the log until the session closes: the close to send, or None when
    the client is gone."""
    ctx, session_id = stream.ctx, stream.session_id
    await stream.catch_up()
    if not stream.closed:
        session, _ = await ctx.service.get_session(session_id)
        if session.state == "ended":  # it ended meanwhile, or was resumed past its end
            await stream.catch_up()  # its closing events are all committed by now
            stream.closed = True
    while not stream.closed:
        news = await subscription.wait()
        if stream.left.is_set():
            return _left(stream)
        if news > stream.last or time.monotonic() - stream.read_at >= RESYNC_S:
            await stream.catch_up(news)
    with contextlib.suppress(asyncio.TimeoutError):  # the client's turn to close (see above)
        await asyncio.wait_for(stream.left.wait(), ctx.settings.websocket_linger_s)
    return _left(stream) if stream.left.is_set() else (1000, "session closed")


def _left(stream: _Stream) -> tuple[int, str] | None:
    """The close for a client that has left (None: nothing to send) or said too much."""
    if stream.too_big:
        return CLOSE_TOO_BIG, f"messages to this socket are limited to {MAX_INBOUND_BYTES} B"
    return None


@router.websocket("/session/{session_id}/events")
async def session_events_ws(websocket: WebSocket, session_id: str, after: int = 0) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    if not SESSION_ID.match(session_id) or not 0 <= after <= MAX_EVENT_ID:
        await websocket.close(code=CLOSE_NOT_FOUND, reason="unknown session")
        return
    refusal = await ctx.limits.hit_websocket(websocket, session_id)
    if refusal is not None:  # the address's or the session's budget is spent: 429
        await refusal.deny(websocket)
        return
    try:
        await ctx.service.get_session(session_id)
    except SessionNotFound as error:
        await websocket.close(code=CLOSE_NOT_FOUND, reason=error.message[:120])
        return
    except DomainError:  # the store is away: tell the page to try again, not "no such session"
        await websocket.accept()
        await websocket.close(code=CLOSE_RETRY, reason="store unavailable; reconnect")
        return
    await websocket.accept()
    try:
        subscription = ctx.bus.subscribe(session_id)
    except TooManySubscribers as full:
        reason = f"too many sockets for this session (at most {full.limit}); close one first"
        await _close(websocket, CLOSE_TOO_MANY, reason)
        return
    stream = _Stream(websocket, ctx, session_id, after)
    ctx.metrics.websockets.inc()
    helpers: list[asyncio.Task[Any]] = [
        asyncio.create_task(_watch_client(stream, subscription)),
        asyncio.create_task(_resync_timer(subscription)),
    ]
    close: tuple[int, str] | None
    try:
        close = await _stream(stream, subscription)
    except SlowReader:
        log.info("closing a WebSocket of session %s… that stopped reading", session_id[:6])
        close = CLOSE_SLOW, f"too slow; reconnect with ?after={stream.last}"
    except DomainError:  # the store went away: the client reconnects with ?after=
        close = CLOSE_RETRY, "store unavailable; reconnect"
    except WebSocketDisconnect:
        close = None  # the client left; it resumes with ?after=
    finally:
        for task in helpers:
            task.cancel()
        ctx.bus.unsubscribe(subscription)
        ctx.metrics.websockets.dec()
    if close is not None:
        await _close(websocket, *close)
