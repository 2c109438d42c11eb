"""`CallLink`: binds one livekit `AgentSession` to its voicebook server session.

- the session's tools go to the server (`tools`, a `ServerTools`);
- its final transcript lines and usage go to the server in batches (`reporter`);
- `end_conversation` lets the goodbye play, closes the agent session and lets the avatar leave
  (so the last seconds of speech-to-text and of avatar time are counted: Deepgram reports its
  remainder when its stream closes), sends that final usage, and only then ends the session on
  the server, which builds and prices the summary — each wait bounded, so a stuck close never
  holds the end of the call;
- when the session closes any other way (the caller hung up, the LLM failed for good, the
  terminal closed), the rest is reported with `hangup`, so the server summarises the call anyway;
- when the LLM fails for good, the caller hears an apology instead of silence;
- a caller whose number the line gave (a SIP caller id) is attested to the server before the
  conversation starts (`attest_line`), so the session is trusted and the number never asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livekit.agents import AgentSession, RunContext
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.avatar import AvatarSession

from voicebook.agent.avatar import AvatarPresence
from voicebook.agent.reporting import CallReporter, usage_totals
from voicebook.agent.tools import ServerTools, ToolObserver
from voicebook.errors import VoicebookError
from voicebook.models import EndConversationResponse, Summary, Usage, User
from voicebook.sdk import AsyncClient

logger = logging.getLogger("voicebook.agent")

APOLOGY = (
    "I'm sorry, I'm having technical trouble on my end. Anything I confirmed is saved; "
    "please call back in a few minutes."
)
GOODBYE_CUE = "The call is ending now: say a short goodbye and nothing else."
FINAL_USAGE_TIMEOUT_S = 5.0
"""At most this long for the agent session to close, and again for the avatar to leave, before
the final usage is reported and the summary priced."""


class CallLink:
    def __init__(
        self,
        client: AsyncClient,
        session_id: str,
        *,
        observer: ToolObserver | None = None,
        report_interval: float = 5.0,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.tools = ServerTools(client, session_id, observer)
        self.reporter = CallReporter(client, session_id, self.usage, interval=report_interval)
        self.summary: Summary | None = None
        self.closed = asyncio.Event()
        self.llm_failures: list[str] = []
        """What went wrong each time the LLM failed for good (after its retries)."""
        self.ending = False
        """The model called end_conversation: the call ends after the goodbye."""
        self.avatar: AvatarPresence | None = None
        """The avatar's time in the room (when the call has an avatar)."""
        self.avatar_session: AvatarSession | None = None
        """The avatar that joined, asked to leave when the conversation ends."""
        self.line_caller: User | None = None
        """The caller the line vouched for (attested to the server), if any."""
        self._session: AgentSession | None = None
        self._ending: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._session_closed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishing: asyncio.Task[None] | None = None

    # --- wiring ------------------------------------------------------------------------------

    def attach(self, session: AgentSession) -> None:
        self._session = session
        session.on("conversation_item_added", self._on_item)
        session.on("error", self._on_error)
        session.on("close", self._on_close)
        self.reporter.start()

    def usage(self) -> Usage:
        avatar = self.avatar.seconds() if self.avatar is not None else 0.0
        model_usage = self._session.usage.model_usage if self._session else []
        return usage_totals(model_usage, avatar)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` as a task this link keeps (so it is not garbage-collected mid-way)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_item(self, event: Any) -> None:
        item = event.item
        if isinstance(item, ChatMessage) and item.role in ("user", "assistant"):
            self.reporter.add_line(
                "user" if item.role == "user" else "agent", item.text_content or ""
            )

    def _on_error(self, event: Any) -> None:
        error = event.error
        if getattr(error, "type", None) != "llm_error" or getattr(error, "recoverable", True):
            return
        self.llm_failures.append(str(getattr(error, "error", error)))
        logger.error("the LLM failed: %s", self.llm_failures[-1])
        if len(self.llm_failures) == 1 and self._session is not None:
            with contextlib.suppress(RuntimeError):  # the session is already closing
                self._session.say(APOLOGY, allow_interruptions=False)

    def _on_close(self, _event: Any) -> None:
        self._session_closed.set()
        self.finish()

    @property
    def known_line(self) -> bool:
        """The caller's number came from the line and the server holds it as trusted."""
        return self.line_caller is not None

    async def attest_line(self, phone: str) -> bool:
        """Vouch for the caller's number as the line gave it (a SIP caller id), before the
        conversation starts. False (and the call goes on, the number asked for) when the server
        refused or could not be reached."""
        try:
            attested = await self.client.attest_caller(self.session_id, phone=phone)
        except VoicebookError as exc:
            logger.warning("the line's caller id was not attested: %s", exc)
            return False
        self.line_caller = attested.user
        return True

    # --- the end of the call -------------------------------------------------------------

    async def end_conversation(self, arguments: dict[str, Any], context: RunContext) -> str:
        """The `end_conversation` tool: end once the reply that says goodbye has played."""
        call_id = context.function_call.call_id
        self.ending = True

        def after_goodbye(_: object) -> None:
            if self._ending is None:
                self._ending = self.spawn(self._end(arguments, call_id))

        context.speech_handle.add_done_callback(after_goodbye)
        return GOODBYE_CUE

    async def _end(self, arguments: dict[str, Any], call_id: str) -> None:
        await self.tools.drain()
        await self._settle_usage()
        await self.reporter.flush()
        try:
            response = await self.tools.call("end_conversation", arguments, call_id)
        except VoicebookError as exc:
            logger.warning("ending the session on the server failed: %s", exc)
        else:
            assert isinstance(response, EndConversationResponse)
            self.summary = response.summary
            self.reporter.server_ended = True  # nothing more is accepted for this session
        self._ended.set()

    async def _settle_usage(self) -> None:
        """The session closed (what is still speaking finishes first) and the avatar gone, each
        bounded by FINAL_USAGE_TIMEOUT_S: what they report on the way out is in the usage."""
        if self._session is not None and not self._session_closed.is_set():
            self._session.shutdown()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._session_closed.wait(), FINAL_USAGE_TIMEOUT_S)
        if self.avatar_session is not None and self.avatar is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.avatar_session.aclose(), FINAL_USAGE_TIMEOUT_S)
            if not await self.avatar.wait_left(FINAL_USAGE_TIMEOUT_S):
                logger.warning("the avatar did not leave; its time is counted until now")

    async def wait_ended(self) -> None:
        """Wait until end_conversation has been sent to the server (after the goodbye)."""
        await self._ended.wait()

    def finish(self) -> asyncio.Task[None]:
        """After the agent session closed (or never started): send the rest of the report, with
        `hangup` unless the model ended the call, and fetch the summary. Idempotent."""
        if self._finishing is None:
            self._finishing = self.spawn(self._finish())
        return self._finishing

    async def _finish(self) -> None:
        try:
            if self._ending is not None:
                await self._ending
            await self.tools.drain()
            await self.reporter.close(hangup=self.summary is None)
            if self.summary is None:
                with contextlib.suppress(VoicebookError):
                    self.summary = (await self.client.get_session(self.session_id)).summary
        finally:
            self.closed.set()
