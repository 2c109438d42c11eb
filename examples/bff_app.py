"""A minimal back-end-for-frontend: the browser asks it for a call, it asks voicebook.

The browser never talks to the service-facing API and never sees the service key: it posts to
this app, which starts a voicebook session and gets a LiveKit token through the `AsyncClient`,
then answers with what the page needs to join the call and follow it live:

    POST /api/call  {"name": "Ana"}   (body optional)
    → {"session_id", "ws_url", "token", "url", "room"}

`ws_url` is the session's event WebSocket on the voicebook server (browser-facing: the session
id is the capability); `token` / `url` go to livekit-client's `room.connect(url, token)`, which
makes LiveKit dispatch the agent into the session's room. `GET /` serves a tiny page that does
this and prints the session's events.

Run it next to a voicebook server (with LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET set
there; this app needs none of them):

    VOICEBOOK_URL=http://127.0.0.1:8000 VOICEBOOK_API_KEY=... \\
        uvicorn bff_app:app --app-dir examples --port 8080
    # or: python examples/bff_app.py --port 8080

Every session is started from this app's address: the server's per-address limit on new sessions
(VOICEBOOK_SESSION_RATE_LIMIT) then counts all browsers together, so raise it, or limit per
browser here.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from voicebook import AsyncClient
from voicebook.errors import ConnectionFailed, VoicebookError


class CallRequest(BaseModel):
    name: Optional[str] = Field(default=None, max_length=200)  # noqa: UP045 - Python 3.10
    """The caller's display name in the LiveKit room."""


class CallResponse(BaseModel):
    session_id: str
    ws_url: str
    token: str
    url: str
    room: str


def create_app(voicebook_url: str | None = None, api_key: str | None = None) -> FastAPI:
    """The BFF; `voicebook_url` / `api_key` default to VOICEBOOK_URL / VOICEBOOK_API_KEY."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncClient(voicebook_url, api_key) as voicebook:  # one pool for all requests
            app.state.voicebook = voicebook
            yield

    app = FastAPI(title="voicebook BFF example", lifespan=lifespan)

    @app.exception_handler(VoicebookError)
    async def voicebook_failed(request: Request, exc: VoicebookError) -> JSONResponse:
        # The browser gets voicebook's own sentence and code, never a traceback or the key.
        # The server unreachable is a bad gateway; otherwise pass its status on.
        status = 502 if isinstance(exc, ConnectionFailed) or exc.status is None else exc.status
        headers = {"Retry-After": f"{exc.retry_after:.0f}"} if exc.retry_after else None
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message}},
            status_code=status,
            headers=headers,
        )

    @app.post("/api/call", response_model=CallResponse)
    async def start_call(request: Request, body: Optional[CallRequest] = None) -> CallResponse:  # noqa: UP045
        voicebook: AsyncClient = request.app.state.voicebook
        session = await voicebook.start_session()
        joined = await voicebook.livekit_token(session.session_id, name=body.name if body else None)
        return CallResponse(
            session_id=session.session_id,
            ws_url=session.ws_url,
            token=joined.token,
            url=joined.url,
            room=joined.room,
        )

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    return app


PAGE = """<!doctype html>
<meta charset="utf-8"><title>voicebook call</title>
<button id="call">Call the receptionist</button>
<pre id="log"></pre>
<script>
const log = (line) => (document.getElementById("log").textContent += line + "\\n");
document.getElementById("call").onclick = async () => {
  const answer = await fetch("/api/call", {method: "POST", headers: {"Content-Type":
    "application/json"}, body: JSON.stringify({name: "Web caller"})});
  const call = await answer.json();
  if (!answer.ok) return log("error: " + call.error.message);
  log(`session ${call.session_id}, room ${call.room} on ${call.url}`);
  // Join with livekit-client: await new Room().connect(call.url, call.token)
  const events = new WebSocket(call.ws_url);
  events.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const what = event.type === "tool_call" ? event.payload.detail : JSON.stringify(event.payload);
    log(`#${event.id} ${event.type} ${what}`);
  };
};
</script>
"""

app = create_app()


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="The voicebook BFF example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
