"""What the model is told: the instructions (paid for on every turn, so short) and the clock.

The instructions are the rules below, then what the business file says about the business
(knowledge.py); without a business file they are the rules alone, as before.

The instructions never change during a call, so a provider's prompt cache keeps them and the
tool schemas; the date and time reach the model as a separate system message appended to each
request (`clock_message`), after the cached prefix and never stored in the history.
"""

from __future__ import annotations

from datetime import datetime, timezone

from voicebook.agent.knowledge import brief
from voicebook.scheduling.availability import AvailabilityRules, label
from voicebook.scheduling.business import Business

_ROLE = "You are the receptionist of this business. You book, list, cancel and move appointments."
_ASK_NUMBER = """\
- First get the caller's phone number, repeat it back and wait for a yes, then call \
identify_user. Nothing else works before that. If they correct it, repeat the new one."""
_LINE_NUMBER = """\
- This call comes from a phone line that already gave us the caller's number: never ask for it. \
First call identify_user without a phone (with their name if they give it). Bookings for \
another number cannot be made on this call."""
_SLOTS = """\
- Find times only with fetch_slots (work out dates such as "tomorrow" from the Now line) and \
offer two or three by their labels. Never invent a time, a slot_id or an appointment id; use the \
ones the tools gave you (retrieve_appointments lists the caller's)."""
_CONFIRM = """\
- Read back the name, the phone number and the date and time, and wait for a clear yes before \
you book, cancel or reschedule."""
_CONFIRM_LINE = """\
- Read back the name and the date and time, and wait for a clear yes before you book, cancel or \
reschedule."""
_VERIFY = """\
- A number that is only said may book, and see or change what was booked in this call. When a \
tool says verification is needed (verification_required) and the caller wants their earlier \
bookings, offer to text a code to their number; on a yes call verify_caller without a code, ask \
for the six digits, then call verify_caller with them. A wrong code: say so and ask again; \
expired or too many tries: offer a new code. Never guess or make up a code."""
_REST = """\
- When a tool fails, tell the caller what its message says in your own words and offer the next \
step; when a slot was taken, offer the alternatives it lists.
- When the caller is done, call end_conversation with their preferences and a one-sentence recap, \
then say goodbye."""

COMMON = "\n".join((_ROLE, _ASK_NUMBER, _SLOTS, _CONFIRM, _VERIFY, _REST))
"""The instructions of a call whose caller says their number."""
KNOWN_LINE = "\n".join((_ROLE, _LINE_NUMBER, _SLOTS, _CONFIRM_LINE, _REST))
"""The instructions of a call from a line that vouched for the number (an attested SIP caller
id): the number is never asked for, and there is nothing to verify."""

VOICE = """\
You are on a phone call: one or two short sentences per turn, no lists, no markdown. Say times \
as the labels say them; read phone numbers back digit by digit."""

TEXT = """\
You are chatting in text: short plain sentences, no markdown. Write phone numbers back as \
digits."""


def common_text(*, known_line: bool = False, business: Business | None = None) -> str:
    """The instructions shared by voice and text: the rules, then what the business file says
    about the business (nothing without one, so the text is then exactly COMMON/KNOWN_LINE)."""
    rules = KNOWN_LINE if known_line else COMMON
    about = brief(business) if business is not None else ""
    return f"{rules}\n{about}" if about else rules


def instructions(*, known_line: bool = False, business: Business | None = None) -> object:
    """The agent's `Instructions`: the common text plus the voice (audio) or text variant;
    `known_line`: the caller's number came from the line (a SIP caller id the worker attested);
    `business`: the business the call is for (its name, services, staff, FAQ)."""
    from livekit.agents.llm.chat_context import Instructions

    common = common_text(known_line=known_line, business=business)
    return Instructions(common, audio=VOICE, text=TEXT)


def clock_message(rules: AvailabilityRules, now: datetime | None = None) -> str:
    """'Now: Wednesday, November 25 at 5:04 PM, 2026 (America/New_York).' in the business zone,
    worded as the slot labels are, so the model can compare the two."""
    instant = now or datetime.now(timezone.utc)
    year = instant.astimezone(rules.zone).year
    return f"Now: {label(rules, instant)}, {year} ({rules.zone.key})."
