"""`WS /session/{id}/events`: replay the log (or what follows `?after=`), then stream live events.

The subscription is taken before the log is read, so nothing published in between is lost; ids
already sent are skipped, and a gap in ids (events from concurrent transactions published out of
order) is filled from the log. A subscriber that falls `QUEUE_SIZE` events behind is closed with
code 1013 and resumes with `?after=<last id it has>`; it never slows anyone else down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voicebook.scheduling.errors import DomainError
from voicebook.server.browser import SESSION_ID, event_envelope
from voicebook.server.context import ServerContext
from voicebook.store.base import EventRecord

router = APIRouter()
SEND_TIMEOUT_S = 10.0
RESYNC_S = 15.0
"""With no live event for this long, re-read the log: covers events a bus failed to carry."""
PAGE = 500
CLOSE_SLOW = 1013
CLOSE_NOT_FOUND = 4404


class _Stream:
    def __init__(self, websocket: WebSocket, ctx: ServerContext, session_id: str, after: int):
        self.ws = websocket
        self.ctx = ctx
        self.session_id = session_id
        self.last = after
        self.closed = False

    async def send(self, event: EventRecord) -> None:
        if event.id <= self.last:
            return
        text = json.dumps(event_envelope(event), separators=(",", ":"), default=str)
        await asyncio.wait_for(self.ws.send_text(text), SEND_TIMEOUT_S)
        self.last = event.id
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


async def _client_gone(websocket: WebSocket) -> None:
    """Returns when the client disconnects (messages from the page are ignored)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@router.websocket("/session/{session_id}/events")
async def session_events_ws(websocket: WebSocket, session_id: str, after: int = 0) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    if not SESSION_ID.match(session_id) or after < 0:
        await websocket.close(code=CLOSE_NOT_FOUND, reason="unknown session")
        return
    try:
        await ctx.service.get_session(session_id)
    except DomainError as error:
        await websocket.close(code=CLOSE_NOT_FOUND, reason=error.message[:120])
        return
    await websocket.accept()
    subscription = ctx.bus.subscribe(session_id)
    stream = _Stream(websocket, ctx, session_id, after)
    ctx.metrics.websockets.inc()
    gone = asyncio.create_task(_client_gone(websocket))
    try:
        await stream.catch_up()
        if not stream.closed:
            session, _ = await ctx.service.get_session(session_id)
            if session.state == "ended":  # it ended meanwhile, or was resumed past its end
                await stream.catch_up()  # its closing events are all committed by now
                stream.closed = True
        while not stream.closed:
            next_event = asyncio.create_task(subscription.get())
            await asyncio.wait(
                {next_event, gone}, timeout=RESYNC_S, return_when=asyncio.FIRST_COMPLETED
            )
            if gone.done():
                next_event.cancel()
                return
            if not next_event.done():
                next_event.cancel()
                await stream.catch_up()
                continue
            event = next_event.result()
            if event is None:
                await websocket.close(
                    code=CLOSE_SLOW, reason=f"too slow; reconnect with ?after={stream.last}"
                )
                return
            if event.id > stream.last + 1:
                await stream.catch_up(upto=event.id - 1)
            await stream.send(event)
        await websocket.close(code=1000, reason="session closed")
    except DomainError:  # the store went away: the client reconnects with ?after=
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1011, reason="store unavailable; reconnect")
    except (WebSocketDisconnect, asyncio.TimeoutError, TimeoutError):
        return  # the client left or stalled; it resumes with ?after=
    finally:
        gone.cancel()
        ctx.bus.unsubscribe(subscription)
        ctx.metrics.websockets.dec()
