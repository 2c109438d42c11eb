"""The LiveKit worker behind `voicebook agent start|dev`.

An `AgentServer` registered for explicit dispatch under LIVEKIT_AGENT_NAME: the page's token
(`POST /livekit/token`) dispatches this agent into the caller's room with `{"session_id": ...}`
as the job metadata. Each job runs in its own process (livekit-agents' job executor), reads the
settings from the environment, and joins the room knowing its session.

A phone call (a SIP participant) brings its caller id, `sip.phoneNumber`: before the
conversation starts the worker attests it to the server (`attest_caller`, service key), so the
session is trusted and the agent never asks for the number. A SIP call that LiveKit dispatched
by a dispatch rule (no session id in its metadata) gets a trusted session started for it
(`start_session(phone=...)`). Only the participant's kind, which LiveKit sets, makes it a phone
call: attributes a web participant sets on itself are never read.

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
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext
from livekit.agents.voice.avatar import AvatarSession
from livekit.agents.voice.room_io import RoomOptions

from voicebook.agent.avatar import AVATAR_JOIN_TIMEOUT_S, AvatarPresence, join_avatar
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
from voicebook.errors import VoicebookError
from voicebook.sdk import AsyncClient

logger = logging.getLogger("voicebook.agent")
SIP_PHONE_NUMBER = "sip.phoneNumber"
"""The SIP participant attribute that holds the caller's number (LiveKit SIP sets it)."""


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


def dispatched_session_id(metadata: str | None) -> str | None:
    """The session id of a dispatch from `POST /livekit/token`; None for any other dispatch
    (e.g. a SIP dispatch rule's, which knows no voicebook session)."""
    try:
        return session_id_from_metadata(metadata)
    except ValueError:
        return None


def line_caller_number(participant: rtc.RemoteParticipant) -> str | None:
    """The caller's number as the phone line gave it: a SIP participant's `sip.phoneNumber`.
    None for any other participant (a web caller says their number)."""
    if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
        return None
    number = (participant.attributes or {}).get(SIP_PHONE_NUMBER, "").strip()
    return number or None


async def link_call(
    client: AsyncClient, session_id: str | None, participant: rtc.RemoteParticipant
) -> CallLink:
    """The `CallLink` for a caller who joined: a phone caller's number attested (or, with no
    session from a token, a trusted session started for it) before the agent is made.

    Raises ValueError when there is neither a session nor a phone line to start one from, and
    the SDK's error when that session cannot be started."""
    number = line_caller_number(participant)
    if session_id is None:
        if number is None:
            raise ValueError(
                "the job has no voicebook session id in its metadata and the caller is not on "
                "a phone line: dispatch the agent with a token from POST /livekit/token"
            )
        started = await client.start_session(phone=number)
        link = CallLink(client, started.session_id)
        if started.identity_level == "trusted" and started.user is not None:
            link.line_caller = started.user
        return link
    link = CallLink(client, session_id)
    if number is not None:
        await link.attest_line(number)
    return link


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
        session = build_voice_session(settings)  # a key missing in this job's environment
    except ConfigError as exc:
        logger.error("cannot take the call: %s", exc)
        ctx.shutdown(str(exc))
        return
    session_id = dispatched_session_id(ctx.job.metadata)
    client = agent_client(
        os.environ.get("VOICEBOOK_URL") or settings.backend_base_url, settings.service_key()
    )
    link: CallLink | None = None

    async def finish() -> None:
        """The job is ending (the caller left, the room closed, the worker drains): the session
        closes, the rest is reported, and only then the process may go."""
        with contextlib.suppress(Exception):
            await session.aclose()
        if link is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(link.finish(), timeout=20)
        await client.aclose()

    ctx.add_shutdown_callback(finish)
    await ctx.connect()
    # The caller first: a phone line's number is attested before the agent (and its prompt and
    # tools) is made, so the conversation never starts by asking for it.
    caller = await ctx.wait_for_participant()
    try:
        link = await link_call(client, session_id, caller)
    except (ValueError, VoicebookError) as exc:
        logger.error("cannot take the call: %s", exc)
        ctx.shutdown(str(exc))
        return
    agent = Receptionist(link, settings.rules, settings.agent_greeting, settings.business_model)
    link.attach(session)
    await start_conversation(
        link,
        session,
        agent,
        ctx.room,
        # The agent listens to that caller, not to whoever joins next.
        RoomOptions(participant_identity=caller.identity),
        avatar=build_avatar(settings) if settings.bey_enabled else None,
        # LiveKit's settings passed explicitly: they may come from .env, not the environment
        livekit_url=settings.livekit_url or "",
        livekit_api_key=settings.livekit_api_key or "",
        livekit_api_secret=secret_value(settings.livekit_api_secret) or "",
    )
    link.spawn(_close_room_after_goodbye(link, ctx))


async def start_conversation(
    link: CallLink,
    session: AgentSession,
    agent: Agent,
    room: rtc.Room,
    room_options: RoomOptions,
    *,
    avatar: AvatarSession | None = None,
    avatar_join_timeout: float = AVATAR_JOIN_TIMEOUT_S,
    **avatar_options: Any,
) -> None:
    """The avatar first — started and joined (bounded), or the call goes on with voice only —
    then the session, so the greeting plays where the caller hears it (see agent/avatar.py).
    The avatar's time is counted from its own join and leave."""
    if avatar is not None:
        link.avatar = AvatarPresence(room, avatar.avatar_identity)
        if await join_avatar(avatar, session, room, timeout=avatar_join_timeout, **avatar_options):
            link.avatar_session = avatar
    await session.start(agent, room=room, room_options=room_options)


async def _close_room_after_goodbye(link: CallLink, ctx: JobContext) -> None:
    """After `end_conversation` (goodbye played, session ended on the server), close the room
    so the caller's page hangs up too."""
    await link.wait_ended()
    with contextlib.suppress(Exception):
        await ctx.delete_room()
    ctx.shutdown("the conversation ended")
