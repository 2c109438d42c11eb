"""Browser-facing endpoints (DESIGN §3): no secret; the unguessable session id is the capability."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse

from voicebook.models import (
    CallerRequest,
    EndSessionResponse,
    ErrorBody,
    Event,
    LiveKitTokenRequest,
    LiveKitTokenResponse,
    SessionView,
    StartSessionRequest,
    StartSessionResponse,
    Summary,
    ToolCallEvent,
)
from voicebook.scheduling.errors import SessionEnded, SessionNotFound
from voicebook.server.context import ServerContext, context
from voicebook.server.errors import error_response
from voicebook.server.observability import session_id as session_var
from voicebook.server.tools import ServiceCredentials, require_service_key
from voicebook.store.base import EventRecord

router = APIRouter(tags=["browser"])
Ctx = Annotated[ServerContext, Depends(context)]
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_EVENT_ID = 2**62
"""Larger `after` values cannot be event ids (and would overflow the databases' integers)."""
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown session."},
    422: {"model": ErrorBody, "description": "Invalid input."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}


async def known_session(session_id: str) -> str:
    """Refuse ids that cannot be ours before touching the database."""
    if not SESSION_ID.match(session_id):
        raise SessionNotFound()
    session_var.set(session_id)
    return session_id


SessionId = Annotated[str, Depends(known_session)]


def envelope_json(event: EventRecord) -> str:
    """The envelope as JSON text, encoded once per event however many sockets receive it."""
    if event.wire is None:
        event.wire = json.dumps(event_envelope(event), separators=(",", ":"), default=str)
    return event.wire


def event_envelope(event: EventRecord) -> dict[str, Any]:
    """The event as the page receives it (DESIGN §3 envelope)."""
    return {
        "id": event.id,
        "type": event.type,
        "session_id": event.session_id,
        "timestamp": event.created_at.isoformat(),
        "payload": event.payload,
    }


def ws_url(request: Request, ctx: ServerContext, session_id: str) -> str:
    base = ctx.settings.ws_base_url
    if not base:
        http = str(request.base_url).rstrip("/")
        base = "ws" + http.removeprefix("http")
    return f"{base.rstrip('/')}/session/{session_id}/events"


@router.post(
    "/session/start",
    response_model=StartSessionResponse,
    responses={429: {"model": ErrorBody, "description": "Too many sessions from this address."}},
    summary="Start a session (empty body allowed)",
)
async def start_session(
    request: Request,
    ctx: Ctx,
    credentials: ServiceCredentials,
    body: Annotated[StartSessionRequest | None, Body(examples=[{}])] = None,
) -> Any:
    """A browser starts an anonymous session; a back-end that signed its user in may start it
    with the service key and the user's phone (and name): the caller is then trusted."""
    if body is not None and body.phone is not None:
        await require_service_key(request, credentials)
    client = request.client.host if request.client else "unknown"
    wait = ctx.session_starts.check(client)
    if wait is not None:
        return error_response(
            429,
            "rate_limited",
            "Too many new sessions from this address; please wait a moment.",
            headers={"Retry-After": ctx.session_starts.retry_after(wait)},
        )
    caller = None
    if body is not None and body.phone is not None:
        caller = CallerRequest(phone=body.phone, name=body.name)
    session = await ctx.service.start_session(caller)
    session_var.set(session.id)
    user = None
    if caller is not None:
        session, record = await ctx.service.get_session(session.id)
        user = ctx.service.caller_view(session, record)
    return StartSessionResponse(
        session_id=session.id,
        ws_url=ws_url(request, ctx, session.id),
        state=session.state,
        created_at=session.created_at,
        user=user,
        identity_level=session.identity_level,
    )


@router.post(
    "/livekit/token",
    response_model=LiveKitTokenResponse,
    responses={
        **ERRORS,
        409: {
            "model": ErrorBody,
            "description": "The session has ended (`session_ended`), or its tokens are for "
            "another identity (`identity_mismatch`).",
        },
        429: {
            "model": ErrorBody,
            "description": "The session has had all its tokens (`too_many_tokens`).",
        },
        503: {
            "model": ErrorBody,
            "description": "LiveKit is not configured, or the store is unavailable.",
        },
    },
    summary="A LiveKit token that dispatches the agent into the session's room",
)
async def livekit_token(body: LiveKitTokenRequest, ctx: Ctx) -> Any:
    """One identity per session (the first token fixes it), at most
    VOICEBOOK_TOKEN_MINTS_PER_SESSION tokens, none after the end; each lives no longer than an
    idle session does."""
    from voicebook.server.livekit import mint_token, require_livekit_settings, session_token_ttl

    session, _ = await ctx.service.get_session(await known_session(body.session_id))
    if session.state == "ended":
        raise SessionEnded()
    require_livekit_settings(ctx.settings)  # before counting: a misconfigured server burns none
    identity = await ctx.service.claim_livekit_identity(
        session.id, body.identity, ctx.settings.token_mints_per_session
    )
    minted = mint_token(
        ctx.settings,
        session.id,
        identity=identity,
        name=body.name,
        now=datetime.now(timezone.utc),  # one instant for nbf and exp: exactly the ttl apart
        ttl=session_token_ttl(ctx.settings),
    )
    return LiveKitTokenResponse(
        token=minted.token, url=minted.url, room=minted.room, identity=minted.identity
    )


@router.get("/session/{session_id}", response_model=SessionView, responses=ERRORS)
async def get_session(session_id: SessionId, ctx: Ctx) -> Any:
    session, user = await ctx.service.get_session(session_id)
    return SessionView(
        session_id=session.id,
        state=session.state,
        user=ctx.service.caller_view(session, user),
        identity_level=session.identity_level if user else None,
        created_at=session.created_at,
        updated_at=session.updated_at,
        ended_at=session.ended_at,
        end_reason=session.end_reason,
        summary=Summary.model_validate(session.summary) if session.summary else None,
    )


@router.get(
    "/session/{session_id}/tools",
    response_model=list[ToolCallEvent],
    responses=ERRORS,
    summary="The session's tool calls, oldest first",
)
async def session_tools(session_id: SessionId, ctx: Ctx) -> Any:
    events = await ctx.service.session_events(session_id, 0, 100_000)
    return JSONResponse([e.payload for e in events if e.type == "tool_call"])


@router.get(
    "/session/{session_id}/events",
    response_model=list[Event],
    responses=ERRORS,
    summary="The session's event log after `after` (the WebSocket replays the same)",
)
async def session_events(
    session_id: SessionId,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Any:
    events = await ctx.service.session_events(session_id, after, limit)
    return JSONResponse([event_envelope(e) for e in events])


@router.post(
    "/session/{session_id}/end",
    response_model=EndSessionResponse,
    responses=ERRORS,
    summary="End the session (page hang-up); idempotent",
)
async def end_session(session_id: SessionId, ctx: Ctx) -> Any:
    summary = await ctx.service.end_session(session_id, reason="page")
    return EndSessionResponse(summary=summary)
