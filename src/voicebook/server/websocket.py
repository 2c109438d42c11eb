"""`WS /session/{id}/events`: replay the log (or what follows `?after=`), then stream live events.

The subscription is taken before the log is read, so nothing published in between is lost; ids
already sent are skipped, and a gap in ids (events from concurrent transactions published out of
order) is filled from the log. A subscriber that falls `QUEUE_SIZE` events behind is closed with
code 1013 and resumes with `?after=<last id it has>`; it never slows anyone else down. With no
live event for `RESYNC_S`, the log is read again, so an event a bus failed to carry still arrives.

Per connection there is one reader loop and two helper tasks (client-gone watcher, resync timer);
nothing is created per event, and each event is encoded once however many sockets receive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voicebook.events.base import Signal, Subscription
from voicebook.scheduling.errors import DomainError, SessionNotFound
from voicebook.server.browser import MAX_EVENT_ID, SESSION_ID, envelope_json
from voicebook.server.context import ServerContext
from voicebook.store.base import EventRecord

router = APIRouter()
RESYNC_S = 15.0
PAGE = 500
CLOSE_SLOW = 1013
CLOSE_NOT_FOUND = 4404
CLOSE_RETRY = 1011


class _Stream:
    def __init__(self, websocket: WebSocket, ctx: ServerContext, session_id: str, after: int):
        self.ws = websocket
        self.ctx = ctx
        self.session_id = session_id
        self.last = after
        self.closed = False
        self.gone = False
        self.active_at = time.monotonic()

    async def send(self, event: EventRecord) -> None:
        if event.id <= self.last:
            return
        await self.ws.send_text(envelope_json(event))
        self.last = event.id
        self.active_at = time.monotonic()
        self.closed = self.closed or event.type == "session_closed"

    async def catch_up(self, upto: int | None = None) -> None:
        """Send logged events after `last` (up to `upto`), a page at a time."""
        while upto is None or self.last < upto:
            events = await self.ctx.service.session_events(self.session_id, self.last, PAGE)
            for event in events:
                if upto is not None and event.id > upto:
                    return
                await self.send(event)
            if len(events) < PAGE:
                return


async def _watch_client(stream: _Stream, subscription: Subscription) -> None:
    """Flag the stream and wake its reader when the client leaves (its messages are ignored)."""
    with contextlib.suppress(WebSocketDisconnect):
        while (await stream.ws.receive())["type"] != "websocket.disconnect":
            pass
    stream.gone = True
    subscription.wake()


async def _resync_timer(subscription: Subscription) -> None:
    while True:
        await asyncio.sleep(RESYNC_S)
        subscription.wake()


@router.websocket("/session/{session_id}/events")
async def session_events_ws(websocket: WebSocket, session_id: str, after: int = 0) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    if not SESSION_ID.match(session_id) or not 0 <= after <= MAX_EVENT_ID:
        await websocket.close(code=CLOSE_NOT_FOUND, reason="unknown session")
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
    subscription = ctx.bus.subscribe(session_id)
    stream = _Stream(websocket, ctx, session_id, after)
    ctx.metrics.websockets.inc()
    helpers = [
        asyncio.create_task(_watch_client(stream, subscription)),
        asyncio.create_task(_resync_timer(subscription)),
    ]
    try:
        await stream.catch_up()
        if not stream.closed:
            session, _ = await ctx.service.get_session(session_id)
            if session.state == "ended":  # it ended meanwhile, or was resumed past its end
                await stream.catch_up()  # its closing events are all committed by now
                stream.closed = True
        while not stream.closed:
            item = await subscription.get()
            if stream.gone:
                return
            if item is Signal.OVERFLOW:
                await websocket.close(
                    code=CLOSE_SLOW, reason=f"too slow; reconnect with ?after={stream.last}"
                )
                return
            if item is Signal.WAKE:
                if time.monotonic() - stream.active_at >= RESYNC_S:
                    await stream.catch_up()
                    stream.active_at = time.monotonic()
                continue
            if item.id > stream.last + 1:
                await stream.catch_up(upto=item.id - 1)
            await stream.send(item)
        await websocket.close(code=1000, reason="session closed")
    except DomainError:  # the store went away: the client reconnects with ?after=
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=CLOSE_RETRY, reason="store unavailable; reconnect")
    except WebSocketDisconnect:
        return  # the client left; it resumes with ?after=
    finally:
        for task in helpers:
            task.cancel()
        ctx.bus.unsubscribe(subscription)
        ctx.metrics.websockets.dec()
