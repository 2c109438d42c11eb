"""What the model is told: the instructions (paid for on every turn, so short) and the clock.

The instructions never change during a call, so a provider's prompt cache keeps them and the
tool schemas; the date and time reach the model as a separate system message appended to each
request (`clock_message`), after the cached prefix and never stored in the history.
"""

from __future__ import annotations

from datetime import datetime, timezone

from voicebook.scheduling.availability import AvailabilityRules, label

COMMON = """\
You are the receptionist of this business. You book, list, cancel and move appointments.
- First get the caller's phone number and call identify_user. Nothing else works before that.
- Find times only with fetch_slots (work out dates such as "tomorrow" from the Now line) and \
offer two or three by their labels. Never invent a time, a slot_id or an appointment id; use the \
ones the tools gave you (retrieve_appointments lists the caller's).
- Read back the name, the phone number and the date and time, and wait for a clear yes before \
you book, cancel or reschedule.
- When a tool fails, tell the caller what its message says in your own words and offer the next \
step; when a slot was taken, offer the alternatives it lists.
- When the caller is done, call end_conversation with their preferences and a one-sentence recap, \
then say goodbye."""

VOICE = """\
You are on a phone call: one or two short sentences per turn, no lists, no markdown. Say times \
as the labels say them; read phone numbers back digit by digit."""

TEXT = """You are chatting in text: short plain sentences, no markdown."""


def instructions() -> object:
    """The agent's `Instructions`: the common text plus the voice (audio) or text variant."""
    from livekit.agents.llm.chat_context import Instructions

    return Instructions(COMMON, audio=VOICE, text=TEXT)


def clock_message(rules: AvailabilityRules, now: datetime | None = None) -> str:
    """'Now: Wednesday, November 25 at 5:04 PM, 2026 (America/New_York).' in the business zone,
    worded as the slot labels are, so the model can compare the two."""
    instant = now or datetime.now(timezone.utc)
    year = instant.astimezone(rules.zone).year
    return f"Now: {label(rules, instant)}, {year} ({rules.zone.key})."
