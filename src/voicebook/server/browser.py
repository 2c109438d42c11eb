"""Browser-facing endpoints (DESIGN §3): no secret; the unguessable session id is the capability.

Every route spends from its client address's rate-limit budget, and from its session's when it
names one (`server.limits`); lists are read a bounded page at a time, in SQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse

from voicebook.models import (
    PAGE_MAX,
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
from voicebook.server.context import ServerContext
from voicebook.server.dependencies import (
    SESSION_ID,
    Ctx,
    ServiceCredentials,
    known_session,
    require_service_key,
)
from voicebook.server.limits import address_key, session_key
from voicebook.server.observability import session_id as session_var
from voicebook.store.base import EventRecord

__all__ = ["MAX_EVENT_ID", "SESSION_ID", "envelope_json", "router"]

MAX_EVENT_ID = 2**62
"""Larger `after` values cannot be event ids (and would overflow the databases' integers)."""
"""The most events (or tool calls) one read returns: what a request costs stays bounded."""


async def limit_address(request: Request, ctx: Ctx) -> None:
    """Every browser route first spends from its client address's budget (429 when spent)."""
    refusal = await ctx.limits.hit(
        "address", address_key(request.client.host if request.client else None)
    )
    if refusal is not None:
        raise refusal.exception()


async def limit_session(ctx: ServerContext, session_id: str) -> str:
    """A well-formed session id spends from that session's budget (429 when spent)."""
    refusal = await ctx.limits.hit("session", session_key(await known_session(session_id)))
    if refusal is not None:
        raise refusal.exception()
    return session_id


async def _limited_session(session_id: str, ctx: Ctx) -> str:
    return await limit_session(ctx, session_id)


SessionId = Annotated[str, Depends(_limited_session)]
RATE_LIMITED = {
    "model": ErrorBody,
    "description": "Too many requests (`rate_limited`; see Retry-After).",
}
router = APIRouter(
    tags=["browser"], dependencies=[Depends(limit_address)], responses={429: RATE_LIMITED}
)
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown session."},
    422: {"model": ErrorBody, "description": "Invalid input."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}
After = Annotated[
    int,
    Query(
        ge=0, le=MAX_EVENT_ID, description="Only what follows this event id (0: from the start)."
    ),
]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"At most this many (≤ {PAGE_MAX}).")]


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
    refusal = await ctx.limits.hit(
        "start", address_key(request.client.host if request.client else None)
    )
    if refusal is not None:
        raise refusal.exception()
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
            "description": "The session has had all its tokens (`too_many_tokens`), or too many "
            "requests (`rate_limited`).",
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

    session, _ = await ctx.service.get_session(await limit_session(ctx, body.session_id))
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
    summary="The session's tool calls, oldest first, a page at a time",
)
async def session_tools(
    session_id: SessionId, ctx: Ctx, after: After = 0, limit: Limit = PAGE_MAX
) -> Any:
    """Only tool-call events are read (an index of them alone), so a long transcript costs
    nothing here. The items are the log's payloads, exactly as the WebSocket shows them; a full
    page links to the next one (`Link: <…?after=<last event id>&limit=…>; rel="next"`)."""
    async with ctx.store.transaction(write=False) as tx:
        if await tx.get_session(session_id) is None:
            raise SessionNotFound()
        events = await tx.tool_calls_after(session_id, after, limit)
    headers = None
    if len(events) == limit:
        following = f"/session/{session_id}/tools?after={events[-1].id}&limit={limit}"
        headers = {"Link": f'<{following}>; rel="next"'}
    return JSONResponse([e.payload for e in events], headers=headers)


@router.get(
    "/session/{session_id}/events",
    response_model=list[Event],
    responses=ERRORS,
    summary="The session's event log after `after` (the WebSocket replays the same)",
)
async def session_events(
    session_id: SessionId,
    ctx: Ctx,
    after: After = 0,
    limit: Limit = PAGE_MAX,
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
