"""The Try-it tab's socket, `WS /console/api/try`: a text conversation with the receptionist.

One connection is one conversation, held by the worker that accepted it, against a normal
session (it shows in the Calls tab and on the session's own socket like any call). The page
gets, as JSON messages with a `type`:

- `started` `{session_id}`, then the greeting as a `turn`;
- `turn` `{agent: [lines], tool_calls: [{name, arguments, ok, code, message, output, ms}],
  ms, error}` for each line it sent, phone numbers masked (`error`: `{code, message}` when
  the model failed for good, after which the call ends, as `voicebook call --text` ends);
- `error` `{code, message}`: a message refused (the conversation goes on) or the reason it ends;
- `summary` `{session_id, summary}` (the server's summary, with its cost), then the close.

It sends `{"text": "..."}` for a line and `{"type": "end"}` to hang up; hanging up, closing
the page, the receptionist saying goodbye or `VOICEBOOK_CONSOLE_TRY_IDLE_S` without a line all
end the call, which the server summarises.

Bounded: only a signed-in operator on this server's own page opens one (`auth`); a line is at
most `MAX_TEXT_CHARS` characters and one turn runs at a time; a conversation has at most
`MAX_TURNS` turns; a process holds at most `VOICEBOOK_CONSOLE_TRY_CONVERSATIONS` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from voicebook.server.console.auth import CsrfRefused, SignInRequired, same_origin, signed_in_as
from voicebook.server.console.conversation import (
    Conversation,
    ConversationFailed,
    Unavailable,
    receptionist_for,
)
from voicebook.server.context import ServerContext
from voicebook.server.errors import domain_error_response

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console/api", include_in_schema=False)

MAX_TEXT_CHARS = 1000
"""A line the operator types; far longer than anyone says in one breath (and the frame stays
under the server's WebSocket frame limit, 4096 bytes, whatever the characters)."""
MAX_TURNS = 60
"""Turns in one conversation: each one sends the whole conversation to the model again."""
SEND_TIMEOUT_S = 5.0
"""A message the page does not take in this long: it stopped reading, and the call ends."""
START_FAILED = (
    "The receptionist could not start a session on this server; the server's log says why. "
    "Try again in a moment."
)
CLOSE_POLICY = 1008
CLOSE_UNAVAILABLE = 1011
CLOSE_TRY_LATER = 1013


class TryItState(BaseModel):
    """Whether the tab can hold a conversation, and if not, what to set or install."""

    available: bool
    code: str | None = None
    message: str | None = None


def try_it_state(app: FastAPI, ctx: ServerContext) -> TryItState:
    found = receptionist_for(app, ctx.settings)
    if not isinstance(found, Unavailable):
        return TryItState(available=True)
    return TryItState(available=False, code=found.code, message=found.message)


class Seats:
    """The conversations this process holds (each an agent session with its model context)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    @classmethod
    def of(cls, app: FastAPI, limit: int) -> Seats:
        seats: Seats | None = getattr(app.state, "try_it_seats", None)
        if seats is None:
            seats = app.state.try_it_seats = cls(limit)
        return seats

    def take(self) -> bool:
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def release(self) -> None:
        self.taken -= 1


class Gone(Exception):
    """The page left (or stopped reading)."""


@dataclass
class Page:
    """The operator's side of the socket: JSON out (bounded waits), and whether it is there."""

    websocket: WebSocket
    gone: bool = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone:
            raise Gone
        try:
            await asyncio.wait_for(self.websocket.send_json(message), SEND_TIMEOUT_S)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError) as exc:
            self.gone = True
            raise Gone from exc

    async def error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})

    async def close(self, code: int = 1000) -> None:
        if not self.gone:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, asyncio.TimeoutError):
                await asyncio.wait_for(self.websocket.close(code=code), SEND_TIMEOUT_S)


def read_line(message: dict[str, Any]) -> str | dict[str, str] | None:
    """What the page sent: a line to say, None for "end", or the refusal (`{code, message}`)."""
    try:
        data = json.loads(message.get("text") or "")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {
            "code": "invalid_message",
            "message": 'Send JSON: {"text": "what you say"}, or {"type": "end"} to hang up.',
        }
    if data.get("type") == "end":
        return None
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        return {"code": "invalid_message", "message": "Type something to say first."}
    if len(text) > MAX_TEXT_CHARS:
        return {
            "code": "message_too_long",
            "message": f"Say it in at most {MAX_TEXT_CHARS} characters (that was {len(text)}).",
        }
    return text.strip()


async def _refuse(websocket: WebSocket, error: CsrfRefused | SignInRequired) -> None:
    """Refuse the handshake with the console's JSON error where the server can answer one
    (uvicorn can), else a close with 1008."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(domain_error_response(error))
    else:
        await websocket.close(code=CLOSE_POLICY, reason=error.message[:120])


@router.websocket("/try")
async def try_it(websocket: WebSocket) -> None:
    # Signed in, and opened by a page of this server (WebSockets have no CORS, so the Origin
    # check is the CSRF guard).
    if await signed_in_as(websocket) is None:
        await _refuse(websocket, SignInRequired())
        return
    if not same_origin(websocket):
        await _refuse(websocket, CsrfRefused())
        return
    ctx: ServerContext = websocket.app.state.ctx
    await websocket.accept()
    page = Page(websocket)
    receptionist = receptionist_for(websocket.app, ctx.settings)
    if isinstance(receptionist, Unavailable):
        await _turn_away(page, receptionist.code, receptionist.message, CLOSE_UNAVAILABLE)
        return
    seats = Seats.of(websocket.app, ctx.settings.console_try_conversations)
    if not seats.take():
        message = (
            f"This server already holds {seats.limit} Try-it conversations (at most "
            "VOICEBOOK_CONSOLE_TRY_CONVERSATIONS); end one, or try again in a moment."
        )
        await _turn_away(page, "too_many_conversations", message, CLOSE_TRY_LATER)
        return
    try:
        address = websocket.client.host if websocket.client else "unknown"
        try:
            conversation = await receptionist.open(websocket.app, ctx.settings, address)
        except Exception as exc:  # an agent extra that is installed but broken
            log.warning("the Try-it receptionist could not be loaded: %s", exc)
            await _turn_away(page, "start_failed", START_FAILED, CLOSE_UNAVAILABLE)
            return
        await _hold(page, conversation, ctx.settings.console_try_idle_s)
    finally:
        seats.release()


async def _turn_away(page: Page, code: str, message: str, close_code: int) -> None:
    """Say why there is no conversation, then close."""
    with contextlib.suppress(Gone):
        await page.error(code, message)
    await page.close(close_code)


async def _hold(page: Page, conversation: Conversation, idle_s: float) -> None:
    """Start the conversation, run its turns, then end it and send the summary (the call is
    ended and summarised however this ends: a hang-up, a goodbye, a timeout, an error)."""
    reason: tuple[str, str] | None = None
    started = False
    try:
        try:
            greeting = await conversation.start()
        except Exception as exc:  # the store, the rate limit or the agent: a sentence
            log.warning("a Try-it conversation could not start: %s", exc)
            raise ConversationFailed("start_failed", START_FAILED) from exc
        started = True
        await page.send({"type": "started", "session_id": conversation.session_id})
        await page.send(greeting)
        reason = await _turns(page, conversation, idle_s)
    except ConversationFailed as failed:
        reason = (failed.code, failed.message)
    except Gone:
        pass
    finally:
        summary = await _end(conversation)
    with contextlib.suppress(Gone):
        if reason is not None:
            await page.error(*reason)
        if summary is not None:
            await page.send(
                {"type": "summary", "session_id": conversation.session_id, "summary": summary}
            )
        await page.close(1000 if started else CLOSE_UNAVAILABLE)


async def _end(conversation: Conversation) -> dict[str, Any] | None:
    try:
        return await conversation.close()
    except Exception as exc:  # bounded by TextCall; the page still gets its close
        log.warning("a Try-it conversation did not close cleanly: %s", exc)
        return None


async def _turns(page: Page, conversation: Conversation, idle_s: float) -> tuple[str, str] | None:
    """The operator's lines, one turn at a time, until the call ends: why it ended, when the
    page should be told (None: it hung up or the receptionist said goodbye)."""
    websocket = page.websocket
    reading: asyncio.Task[Any] | None = None
    turn: asyncio.Task[dict[str, Any]] | None = None
    turns = 0
    try:
        while True:
            reading = reading or asyncio.ensure_future(websocket.receive())
            waiting: set[asyncio.Future[Any]] = {reading} if turn is None else {reading, turn}
            done, _ = await asyncio.wait(
                waiting,
                timeout=idle_s if turn is None else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                minutes = f"{idle_s / 60:g} minutes" if idle_s >= 60 else f"{idle_s:g} s"
                return "idle_timeout", f"Nothing was said for {minutes}, so the call was ended."
            if turn is not None and turn in done:
                answered = turn.result()
                turn = None
                await page.send(answered)
                if conversation.ending or answered["error"] is not None:
                    return None  # said goodbye, or the model failed for good (as in the CLI)
                if turns >= MAX_TURNS:
                    return (
                        "too_many_turns",
                        f"A conversation here has at most {MAX_TURNS} turns; start a new one.",
                    )
            if reading in done:
                try:
                    message = reading.result()
                except RuntimeError:  # the socket closed under the read
                    message = {"type": "websocket.disconnect"}
                reading = None
                if message["type"] == "websocket.disconnect":
                    page.gone = True
                    return None
                line = read_line(message)
                if line is None:
                    return None
                if isinstance(line, dict):
                    await page.error(line["code"], line["message"])
                elif turn is not None:
                    await page.error(
                        "turn_in_progress",
                        "The receptionist is still answering; send your next line after it.",
                    )
                else:
                    turns += 1
                    turn = asyncio.ensure_future(conversation.say(line))
    finally:
        for task in (reading, turn):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
