"""The avatar (Beyond Presence) in the call: joined before the conversation starts, or none.

Why this order (livekit-plugins-bey's docs and livekit/agents `examples/avatar`): the avatar's
`start` replaces the session's audio output with a data stream to the avatar, and the agent
session, started afterwards, then publishes no audio track of its own — the avatar speaks for
it. Started beside the session instead, the greeting begins on the agent's own track and is cut
off when the output is swapped mid-sentence, and both tracks stay in the room.

Why a bounded wait and a fall-back: the data-stream output waits for the avatar without a
timeout, so an avatar that never joins would leave the agent mute for the whole call. When it
has not joined in time, its output is removed before the session starts, so the session
publishes its own audio track and the call goes on with voice only.

Why `AvatarPresence`: the avatar costs by the minute it is in the room, so its time is counted
from its own participant's join to its own leave, not from when it was asked to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.avatar import AvatarSession

logger = logging.getLogger("voicebook.agent")

AVATAR_JOIN_TIMEOUT_S = 8.0
"""How long the caller may wait for the avatar before the call goes on with voice only."""


class AvatarPresence:
    """The avatar participant's time in the room, from the room's own join and leave events
    (every stay counted, should it reconnect)."""

    def __init__(
        self, room: rtc.Room, identity: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.identity = identity
        self._clock = clock
        self._total = 0.0
        self._since: float | None = None
        self._left = asyncio.Event()
        room.on("participant_connected", self._on_connected)
        room.on("participant_disconnected", self._on_disconnected)

    @property
    def present(self) -> bool:
        return self._since is not None

    def seconds(self) -> float:
        """Time in the room so far (up to now while it is still there)."""
        current = self._clock() - self._since if self._since is not None else 0.0
        return self._total + current

    async def wait_left(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the avatar is not in the room; True if it is not."""
        if not self.present:
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._left.wait(), timeout)
        return not self.present

    def _on_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.identity and self._since is None:
            self._since = self._clock()
            self._left.clear()

    def _on_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.identity and self._since is not None:
            self._total += self._clock() - self._since
            self._since = None
            self._left.set()


async def join_avatar(
    avatar: AvatarSession,
    session: AgentSession,
    room: rtc.Room,
    *,
    timeout: float = AVATAR_JOIN_TIMEOUT_S,
    **start_options: Any,
) -> bool:
    """Start the avatar and wait until it has joined, before `session` is started.

    True: the session's audio goes to the avatar. False (it failed to start or did not join
    within `timeout`): its audio output is removed again and it is asked to leave, so the
    session, started next, speaks on its own audio track."""
    try:
        await avatar.start(session, room=room, **start_options)
        await avatar.wait_for_join(timeout=timeout)
    except Exception as exc:  # the provider's API, the network, or the bounded wait
        logger.warning("the avatar did not join (%r); the call goes on with voice only", exc)
        session.output.audio = None
        with contextlib.suppress(Exception):
            await avatar.aclose()
        return False
    return True
