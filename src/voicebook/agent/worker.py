"""The LiveKit worker behind `voicebook agent start|dev`.

An `AgentServer` registered for explicit dispatch under LIVEKIT_AGENT_NAME: the page's token
(`POST /livekit/token`) dispatches this agent into the caller's room with `{"session_id": ...}`
as the job metadata. Each job runs in its own process (livekit-agents' job executor), reads the
settings from the environment, and joins the room knowing its session.

SIGTERM drains: livekit-agents stops taking jobs and waits for running calls to end. When the
caller leaves, the agent session closes and `CallLink` reports the rest with `hangup`, so the
server ends the session and summarises it; the job waits for that report before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

from livekit.agents import AgentServer, JobContext

from voicebook.agent.link import CallLink
from voicebook.agent.providers import (
    build_avatar,
    build_voice_session,
    check_settings,
    secret_value,
)
from voicebook.agent.receptionist import Receptionist
from voicebook.agent.tools import agent_client
from voicebook.config import ConfigError, Settings, load_settings

logger = logging.getLogger("voicebook.agent")


def session_id_from_metadata(metadata: str | None) -> str:
    """The voicebook session id the token's dispatch carries (`{"session_id": ...}`)."""
    try:
        session_id = json.loads(metadata or "").get("session_id")
    except (ValueError, AttributeError):
        session_id = None
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(
            "the job has no voicebook session id in its metadata: dispatch the agent with a "
            "token from POST /livekit/token"
        )
    return session_id


def create_agent_server(settings: Settings, *, port: int | None = None) -> AgentServer:
    """The worker: explicit dispatch by name, one job process per call. `port` is its health
    HTTP server's (livekit-agents' default, 8081, when None; 0 picks a free one)."""
    check_settings(settings, voice=True)
    options = {} if port is None else {"port": port}
    server = AgentServer(
        **options,
        ws_url=settings.livekit_url or "",
        api_key=settings.livekit_api_key or "",
        api_secret=secret_value(settings.livekit_api_secret) or "",
    )
    server.rtc_session(entrypoint, agent_name=settings.livekit_agent_name)
    return server


async def entrypoint(ctx: JobContext) -> None:
    """One call: the receptionist in the caller's room, bound to its voicebook session."""
    try:
        settings = load_settings()
        session_id = session_id_from_metadata(ctx.job.metadata)
    except (ConfigError, ValueError) as exc:
        logger.error("cannot take the call: %s", exc)
        ctx.shutdown(str(exc))
        return
    client = agent_client(
        os.environ.get("VOICEBOOK_URL") or settings.backend_base_url, settings.service_key()
    )
    session = build_voice_session(settings)
    link = CallLink(client, session_id)
    agent = Receptionist(link, settings.rules, settings.agent_greeting)
    link.attach(session)

    async def finish() -> None:
        """The job is ending (the caller left, the room closed, the worker drains): the session
        closes, the rest is reported, and only then the process may go."""
        with contextlib.suppress(Exception):
            await session.aclose()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(link.finish(), timeout=20)
        await client.aclose()

    ctx.add_shutdown_callback(finish)
    await ctx.connect()
    if settings.bey_enabled:
        # Started before the session, but not awaited: the greeting does not wait on the avatar.
        link.spawn(_start_avatar(settings, link, session, ctx))
    await session.start(agent, room=ctx.room)
    link.spawn(_close_room_after_goodbye(link, ctx))


async def _start_avatar(
    settings: Settings, link: CallLink, session: object, ctx: JobContext
) -> None:
    try:
        # LiveKit's settings passed explicitly: they may come from .env, not the environment
        await build_avatar(settings).start(
            session,
            room=ctx.room,
            livekit_url=settings.livekit_url or "",
            livekit_api_key=settings.livekit_api_key or "",
            livekit_api_secret=secret_value(settings.livekit_api_secret) or "",
        )
    except Exception:
        logger.exception("the avatar did not start; the call goes on with voice only")
    else:
        link.avatar_started_at = time.monotonic()


async def _close_room_after_goodbye(link: CallLink, ctx: JobContext) -> None:
    """After `end_conversation` (goodbye played, session ended on the server), close the room
    so the caller's page hangs up too."""
    await link.wait_ended()
    with contextlib.suppress(Exception):
        await ctx.delete_room()
    ctx.shutdown("the conversation ended")
