"""The avatar offline, with livekit's own session and audio-output classes: the session starts
only after the avatar joined and then publishes no audio of its own; an avatar that never joins
(or fails to start) leaves the agent speaking on its own track; avatar time runs from the
avatar's own join to its own leave; the launcher uses only public livekit-agents entry points."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent_support import require_agent_extra

require_agent_extra()

from livekit import rtc  # noqa: E402
from livekit.agents import Agent, AgentSession, APIConnectionError  # noqa: E402
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput  # noqa: E402
from livekit.agents.voice.room_io import RoomOptions  # noqa: E402

from voicebook.agent.avatar import AvatarPresence  # noqa: E402
from voicebook.agent.link import CallLink  # noqa: E402
from voicebook.agent.worker import start_conversation  # noqa: E402
from voicebook.sdk import AsyncClient  # noqa: E402

AVATAR = "bey-avatar-agent"
SOURCE = Path(__file__).resolve().parents[1] / "src" / "voicebook"


class StandInAvatar(AvatarSession):
    """Beyond Presence's plugin without its paid HTTP call: `start` does to the session what
    `livekit.plugins.bey.AvatarSession.start` does (the session's audio to a livekit
    `DataStreamAudioOutput` for the avatar participant); when the avatar joins is the test's."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.started = asyncio.Event()
        self.joined = asyncio.Event()
        self.closed = False

    @property
    def avatar_identity(self) -> str:
        return AVATAR

    async def start(self, agent_session: AgentSession, room: rtc.Room, **_: Any) -> None:
        await super().start(agent_session, room)
        if self.fail is not None:
            raise self.fail
        agent_session.output.replace_audio_tail(
            DataStreamAudioOutput(
                room,
                destination_identity=AVATAR,
                wait_remote_track=rtc.TrackKind.KIND_VIDEO,
                sample_rate=24000,
            )
        )
        self.started.set()

    async def wait_for_join(self, *, timeout: float | None = 30.0) -> None:
        await asyncio.wait_for(self.joined.wait(), timeout)

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


def audio_chain(session: AgentSession) -> list[str]:
    """The labels of the session's audio outputs, outermost first."""
    labels, output = [], session.output.audio
    while output is not None:
        labels.append(output.label)
        output = output.next_in_chain
    return labels


def new_session() -> AgentSession:
    return AgentSession(vad=None, turn_handling={"turn_detection": None})


# A room that is not connected: RoomIO runs without its text output (which needs the local
# participant of a connected room); the audio output is what these tests are about.
OFFLINE_ROOM = RoomOptions(text_output=False)


@pytest.fixture
async def link() -> Any:
    client = AsyncClient("http://127.0.0.1:9")
    yield CallLink(client, "sess")
    await client.aclose()


async def test_the_session_starts_after_the_avatar_joined_and_has_no_audio_track(
    link: CallLink,
) -> None:
    room, session, avatar = rtc.Room(), new_session(), StandInAvatar()
    starting = asyncio.create_task(
        start_conversation(
            link, session, Agent(instructions="."), room, OFFLINE_ROOM, avatar=avatar
        )
    )
    await avatar.started.wait()
    await asyncio.sleep(0)  # let start_conversation run on, were it not waiting for the join
    assert not starting.done()
    with pytest.raises(RuntimeError):
        session.room_io  # noqa: B018 - the session has not started: the greeting waits too
    avatar.joined.set()
    await starting
    try:
        assert session.room_io is not None
        # Only the avatar speaks: the agent publishes no audio track of its own (RoomIO's).
        assert audio_chain(session) == ["DataStreamIO"]
        assert link.avatar_session is avatar and not avatar.closed
    finally:
        await session.aclose()


@pytest.mark.parametrize(
    "failure", [None, APIConnectionError("bey unreachable")], ids=["never-joins", "fails-to-start"]
)
async def test_without_the_avatar_the_agent_speaks_on_its_own_track(
    link: CallLink, failure: Exception | None
) -> None:
    room, session, avatar = rtc.Room(), new_session(), StandInAvatar(fail=failure)
    await start_conversation(
        link,
        session,
        Agent(instructions="."),
        room,
        OFFLINE_ROOM,
        avatar=avatar,
        avatar_join_timeout=0.05,
    )
    try:
        # Not the data stream that would wait for the avatar forever (a mute agent): RoomIO's
        # own audio output, the agent's track.
        assert audio_chain(session) == ["RoomIO"]
        assert avatar.closed and link.avatar_session is None
        assert link.usage().avatar_seconds == 0
    finally:
        await session.aclose()


async def test_avatar_time_runs_from_its_own_join_to_its_own_leave() -> None:
    now = [100.0]
    room = rtc.Room()
    presence = AvatarPresence(room, AVATAR, clock=lambda: now[0])
    avatar, caller = SimpleNamespace(identity=AVATAR), SimpleNamespace(identity="caller")
    now[0] = 104.0
    room.emit("participant_connected", caller)
    assert presence.seconds() == 0  # asked to start is not joined
    room.emit("participant_connected", avatar)
    now[0] = 110.0
    assert presence.seconds() == 6.0  # still there: up to now
    room.emit("participant_disconnected", caller)
    now[0] = 112.5
    room.emit("participant_disconnected", avatar)
    now[0] = 200.0
    assert presence.seconds() == 8.5  # left: no more
    room.emit("participant_connected", avatar)  # a reconnect counts its own stay
    now[0] = 201.0
    assert presence.seconds() == 9.5


async def test_the_reported_avatar_seconds_are_its_presence(link: CallLink) -> None:
    now = [0.0]
    room = rtc.Room()
    link.avatar = AvatarPresence(room, AVATAR, clock=lambda: now[0])
    now[0] = 50.0
    assert link.usage().avatar_seconds == 0
    room.emit("participant_connected", SimpleNamespace(identity=AVATAR))
    now[0] = 80.0
    room.emit("participant_disconnected", SimpleNamespace(identity=AVATAR))
    assert link.usage().avatar_seconds == 30.0
    assert await link.avatar.wait_left(0)


def private_livekit_imports(path: Path) -> list[str]:
    """`from livekit... import _name` and imports of `livekit..._module` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("livekit"):
            parts = node.module.split(".") + [alias.name for alias in node.names]
            found += [f"{path.name}: {node.module}" for p in parts if p.startswith("_")][:1]
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}: {alias.name}"
                for alias in node.names
                if alias.name.startswith("livekit")
                and any(p.startswith("_") for p in alias.name.split("."))
            ]
    return found


def test_only_public_livekit_agents_entry_points() -> None:
    found = [hit for path in SOURCE.rglob("*.py") for hit in private_livekit_imports(path)]
    assert found == []


class LeavingAvatar(StandInAvatar):
    """An avatar in the room that leaves when asked (as Beyond Presence's does when its
    participant is removed): the leave comes at `left_at` on the test's clock."""

    def __init__(self, room: rtc.Room, clock: list[float], left_at: float) -> None:
        super().__init__()
        self.room, self.clock, self.left_at = room, clock, left_at

    async def aclose(self) -> None:
        self.clock[0] = self.left_at
        self.room.emit("participant_disconnected", SimpleNamespace(identity=AVATAR))
        await super().aclose()


async def test_end_conversation_prices_the_summary_after_the_avatar_left(
    scripted: Any, tmp_path: Path
) -> None:
    """The model ends the call while the avatar is in the room: the agent lets it leave and
    reports that final usage before ending the session, so the summary's cost has the avatar's
    whole stay (join to leave), not the figure of the last periodic report."""
    from servers import running_server
    from voicebook.agent.textmode import TextCall
    from voicebook.config import load_settings

    bye = "That's all, thank you."
    scripted.model.add(
        {bye: [{"call": "end_conversation", "args": {"recap": "Nothing booked."}}, {"say": "Bye!"}]}
    )
    settings = load_settings(
        openai_api_base=scripted.base_url, openai_api_key="x", llm_model="scripted-model"
    )
    with running_server({"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db"}, tmp_path) as srv:
        async with AsyncClient(srv.url) as client:
            call = TextCall(settings, client)
            await call.start()
            assert call.link is not None
            clock, room = [0.0], rtc.Room()
            call.link.avatar = AvatarPresence(room, AVATAR, clock=lambda: clock[0])
            call.link.avatar_session = LeavingAvatar(room, clock, left_at=42.0)
            room.emit("participant_connected", SimpleNamespace(identity=AVATAR))
            clock[0] = 10.0  # what a report sent before the leave would say
            await call.say(bye)
            summary = (await client.get_session(call.session_id)).summary
            await call.close()
    assert summary is not None and summary.cost is not None
    assert summary.cost["usage"]["avatar_seconds"] == 42.0


async def test_spoken_phone_numbers_reach_the_model_as_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deepgram is asked for numerals and smart formatting ("four one five ..." → "415-..."),
    options the installed plugin accepts."""
    from livekit.plugins import deepgram

    from voicebook.agent.providers import build_voice_session
    from voicebook.config import load_settings

    made: list[deepgram.STT] = []
    plugin_stt = deepgram.STT

    def recording_stt(**options: Any) -> deepgram.STT:
        made.append(plugin_stt(**options))
        assert options["numerals"] is True and options["smart_format"] is True
        return made[-1]

    monkeypatch.setattr(deepgram, "STT", recording_stt)
    settings = load_settings(
        openrouter_api_key="x",
        livekit_url="ws://127.0.0.1:9",
        livekit_api_key="k",
        livekit_api_secret="s" * 32,
        deepgram_api_key="x",
        cartesia_api_key="x",
    )
    session = build_voice_session(settings)
    assert made and session.stt is made[0]


class StandInJob:
    """What the worker's `entrypoint` uses of livekit's `JobContext`, without a LiveKit server:
    the dispatch's metadata, the caller who joins, `shutdown` and the shutdown callbacks (run
    by `run_shutdown`, as livekit runs them when the job ends)."""

    def __init__(self, metadata: str, caller: Any) -> None:
        self.job = SimpleNamespace(metadata=metadata)
        self.room = rtc.Room()
        self.caller = caller
        self.callbacks: list[Any] = []
        self.reason: str | None = None

    def add_shutdown_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    async def connect(self) -> None:
        """The room is joined (nothing to join here)."""

    async def wait_for_participant(self) -> Any:
        return self.caller

    def shutdown(self, reason: str = "") -> None:
        self.reason = reason

    async def run_shutdown(self) -> None:
        for callback in self.callbacks:
            await callback()


VOICE_ENV = {
    "OPENROUTER_API_KEY": "x",
    "DEEPGRAM_API_KEY": "x",
    "CARTESIA_API_KEY": "x",
    "LIVEKIT_URL": "ws://127.0.0.1:9",
    "LIVEKIT_API_KEY": "k",
    "LIVEKIT_API_SECRET": "dummy-secret-dummy-secret-dummy-secret",
    "VOICEBOOK_URL": "http://127.0.0.1:9",
}


async def test_the_entrypoint_refuses_a_job_without_a_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A web caller in a room whose dispatch carries no voicebook session: the job ends with
    the reason, before any session starts, and its shutdown completes."""
    from voicebook.agent.worker import entrypoint

    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in VOICE_ENV.items():
        monkeypatch.setenv(name, value)
    caller = SimpleNamespace(
        identity="web-caller", kind=rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, attributes={}
    )
    job = StandInJob("{}", caller)
    await entrypoint(job)  # type: ignore[arg-type]
    assert job.reason is not None and "no voicebook session id" in job.reason
    await asyncio.wait_for(job.run_shutdown(), 30)


async def test_the_entrypoint_without_settings_ends_the_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from voicebook.agent.worker import entrypoint

    monkeypatch.chdir(tmp_path)
    for name in VOICE_ENV:
        monkeypatch.delenv(name, raising=False)
    job = StandInJob('{"session_id": "s"}', None)
    await entrypoint(job)  # type: ignore[arg-type]
    assert job.reason is not None and "DEEPGRAM_API_KEY" in job.reason
    assert job.callbacks == []  # nothing was started that would need closing
