"""Transcript lines and usage, reported to the server in batches during the call.

Why batches: the summary needs the recap and the cost even when the caller just hangs up, so
the server must already hold most of the call when the end comes; one report per line would
cost an HTTP request per utterance. Lines are kept until a report carrying them succeeds, and
each batch keeps its idempotency key across the SDK's retries, so nothing is lost or doubled.
Usage is sent as running totals (the server keeps the largest figures it has seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from voicebook.errors import SessionEnded, VoicebookError
from voicebook.models import TranscriptLine, Usage
from voicebook.sdk import AsyncClient

logger = logging.getLogger("voicebook.agent")

MAX_LINES_PER_REPORT = 200  # the server's limit (models.AgentReport)
CLOSE_ATTEMPTS, CLOSE_RETRY_S = 5, 1.0  # the last report outlives a server restart of seconds


def usage_totals(model_usage: Iterable[Any], avatar_seconds: float = 0.0) -> Usage:
    """livekit-agents' per-model usage (`AgentSession.usage.model_usage`) as the server's
    running totals."""
    totals: dict[str, Any] = {"avatar_seconds": round(avatar_seconds, 3)}
    for item in model_usage:
        kind = getattr(item, "type", "")
        if kind == "llm_usage":
            totals["llm_model"] = totals.get("llm_model") or item.model or None
            totals["llm_input_tokens"] = totals.get("llm_input_tokens", 0) + item.input_tokens
            totals["llm_cached_tokens"] = (
                totals.get("llm_cached_tokens", 0) + item.input_cached_tokens
            )
            totals["llm_output_tokens"] = totals.get("llm_output_tokens", 0) + item.output_tokens
        elif kind == "stt_usage":
            totals["stt_seconds"] = totals.get("stt_seconds", 0.0) + item.audio_duration
        elif kind == "tts_usage":
            totals["tts_characters"] = totals.get("tts_characters", 0) + item.characters_count
    return Usage.model_validate(totals)


class CallReporter:
    """Queues transcript lines; sends them with the usage every `interval` seconds, when
    `batch_size` lines wait, and on `close()`."""

    def __init__(
        self,
        client: AsyncClient,
        session_id: str,
        usage: Callable[[], Usage],
        *,
        interval: float = 5.0,
        batch_size: int = 20,
    ) -> None:
        self._client = client
        self._session_id = session_id
        self._usage = usage
        self._interval = interval
        self._batch_size = batch_size
        self._pending: list[TranscriptLine] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_usage: Usage | None = None
        self.server_ended = False
        self.reports_sent = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="voicebook-reporter")

    def add_line(self, role: str, text: str) -> None:
        text = text.strip()
        if not text or self.server_ended:
            return
        for start in range(0, len(text), 4000):  # the server's limit per line
            self._pending.append(TranscriptLine(role=role, text=text[start : start + 4000]))
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def _loop(self) -> None:
        while not self.server_ended:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self, *, hangup: bool = False, recap: str | None = None) -> bool:
        """Send what is pending (and the usage, if it changed); True when the server has it all.

        `hangup=True` says the caller left, which ends the session on the server."""
        async with self._lock:
            while True:
                if self.server_ended:
                    return True
                batch = self._pending[:MAX_LINES_PER_REPORT]
                usage = self._usage()
                more = len(self._pending) > len(batch)
                if not (batch or hangup or recap or usage != self._last_usage):
                    return True
                try:
                    await self._client.report(
                        self._session_id,
                        transcript=batch,
                        usage=usage,
                        recap=recap,
                        hangup=hangup and not more,
                    )
                except SessionEnded:
                    self.server_ended = True
                    self._pending.clear()
                    return True
                except VoicebookError as exc:
                    logger.warning("report to the server failed (kept for later): %s", exc)
                    return False
                self.reports_sent += 1
                del self._pending[: len(batch)]
                self._last_usage = usage
                if hangup and not more:
                    self.server_ended = True
                if not more:
                    return True

    async def close(self, *, hangup: bool) -> None:
        """Stop the timer and send the rest; `hangup=True` ends the session on the server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for attempt in range(CLOSE_ATTEMPTS):
            if await self.flush(hangup=hangup):
                return
            if attempt + 1 < CLOSE_ATTEMPTS:
                await asyncio.sleep(CLOSE_RETRY_S)
        logger.error("the last report did not reach the server; its lines are lost")
