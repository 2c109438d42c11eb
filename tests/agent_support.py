"""What the agent tests share: the agent-extra check, a clean environment for CLI
subprocesses, and the caller scripts the stand-in model follows."""

from __future__ import annotations

import os
import subprocess
import sys
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


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without voicebook's, LiveKit's or the providers' settings, plus `extra`."""
    prefixes = ("VOICEBOOK_", "LIVEKIT_", "SUPABASE_", "OPENAI_", "OPENROUTER_", "DEEPGRAM_")
    prefixes += ("CARTESIA_", "BEY_", "AGENT_", "BACKEND_", "HTTP_BASE", "WS_BASE")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**base, **(extra or {})}


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
