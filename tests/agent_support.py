"""What the agent tests share: the agent-extra check, a clean environment for CLI
subprocesses, and the caller scripts the stand-in model follows."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REQUIRE_SERVICES
from voicebook.agent import agent_extra_missing

REPO = Path(__file__).resolve().parents[1]


def require_agent_extra() -> None:
    """Skip the module without the `agent` extra (fail under VOICEBOOK_REQUIRE_SERVICES)."""
    missing = agent_extra_missing()
    if not missing:
        return
    message = f"the agent extra is not installed ({', '.join(missing)})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " [VOICEBOOK_REQUIRE_SERVICES is set]", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def voicebook(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m voicebook ARGS` as a user runs it (a subprocess, stdin not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        env=env,
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Terminal:
    """`python -m voicebook ARGS` in a pseudo-terminal, as a person at a keyboard runs it."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self._main, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voicebook", *args],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**env, "TERM": "dumb"},  # no colour codes between the words
            cwd=cwd,
            close_fds=True,
        )
        os.close(terminal)
        self.seen = b""

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._main)

    @property
    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def type(self, keys: str) -> int:
        """Type `keys`; returns where the output stood, for `read_until(..., start)`."""
        mark = len(self.seen)
        os.write(self._main, keys.encode())
        return mark

    def _read(self, timeout: float) -> bool:
        if not select.select([self._main], [], [], timeout)[0]:
            return False
        try:
            chunk = os.read(self._main, 4096)
        except OSError:  # the process closed the terminal
            return False
        self.seen += chunk
        return bool(chunk)

    def read_until(self, marker: bytes, start: int = 0, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.seen[start:]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {marker!r} in:\n{self.text}"
            if not self._read(remaining) and self.process.poll() is not None:
                raise AssertionError(f"exited before {marker!r}:\n{self.text}")

    def wait(self, timeout: float = 30) -> int:
        """Wait for the exit, keeping what it wrote last."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        code = self.process.wait(timeout=1)
        while self._read(0.2):
            pass
        return code


IDENTIFY = "Hi, this is Ada Lovelace, my number is 415 555 0101."
ASK = "What is the first time you have?"
BOOK = "Yes, please book that one."
BYE = "That's all, thank you."

BOOKING_RULES: dict[str, list[dict[str, Any]]] = {
    IDENTIFY: [
        {"call": "identify_user", "args": {"phone": "415 555 0101", "name": "Ada Lovelace"}},
        {"say": "Thanks, Ada. When would you like to come in?"},
    ],
    ASK: [
        {"call": "fetch_slots", "args": {"limit": 3}},
        {"say": "The first free time is the one I found. Shall I book it?"},
    ],
    BOOK: [
        {"call": "book_appointment", "args": {"slot_id": "$fetch_slots.slots.0.slot_id"}},
        {"say": "You're booked."},
    ],
    BYE: [
        {"call": "end_conversation", "args": {"recap": "Booked the first free slot."}},
        {"say": "Goodbye, Ada!"},
    ],
}


def writes_before_yes(results: dict[str, Any]) -> set[tuple[str, int, str]]:
    """(scenario, turn, detail) of every failed "no write before a yes" check in a
    `voicebook eval --json` document keyed by scenario name."""
    return {
        (name, check["turn"], check["detail"])
        for name, result in results.items()
        for check in result["checks"]
        if check["what"] == "no write before a yes" and not check["passed"]
    }
