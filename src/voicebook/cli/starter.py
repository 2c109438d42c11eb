"""The starter business file `voicebook init` writes: the owner's few answers, and commented
examples of everything else the file can say, so the next step is uncommenting, not reading docs.

Example lines are TOML commented out with `# ` (`# price = 40`, `# [[staff]]`); explanations are
prose after `# `, never a `key = value` or a `[table]`. No I/O here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

DEFAULT_NAME = "My Business"
DEFAULT_ZONE = "America/New_York"
DEFAULT_HOURS = "mon-fri 09:00-17:00"
DEFAULT_SERVICE = "Appointment"
DEFAULT_MINUTES = 30
DEFAULT_STAFF = "Alex"


@dataclass(frozen=True)
class Starter:
    """The answers the starter file is written from (the defaults when nobody is asked)."""

    name: str = DEFAULT_NAME
    timezone: str = DEFAULT_ZONE
    hours: str = DEFAULT_HOURS
    service: str = DEFAULT_SERVICE
    minutes: int = DEFAULT_MINUTES
    staff: str = DEFAULT_STAFF


def slug(name: str, fallback: str) -> str:
    """An id from a name ("Dr. Lee" → "dr-lee"): what the file's ids allow, else `fallback`."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].rstrip("-")
    return text or fallback


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)


def render(answers: Starter) -> str:
    """The file's text; it loads with `load_settings()` as written and with the examples on."""
    service_id = slug(answers.service, "service")
    staff_id = slug(answers.staff, "staff")
    if staff_id == service_id:
        staff_id = f"{staff_id}-1"
    return f"""\
# voicebook.toml: the business the receptionist answers for.
# Check it with `voicebook config check` (it prints every staff member's and room's week).
# Environment variables override the settings at the top (VOICEBOOK_TIMEZONE=… beats timezone).
# Ids are lower-case letters, digits and dashes; names are what callers hear.
# Lines such as `# price = 40` are examples: remove the `# ` to use them.

# --- settings: keep them above the first [table] -----------------------------------------
timezone = {_string(answers.timezone)}  # IANA zone; every hour in this file is local time there
min_notice_minutes = 60  # how soon from now the earliest bookable slot may start
horizon_days = 30  # how far ahead callers may book, in whole local days
# closed_dates = ["2026-12-25", "2027-01-01"]

[business]
name = {_string(answers.name)}
# phone = "+1 415 555 0100"
# address = "1 Main Street, Springfield"
# website = "https://example.com"
# greeting = "Thanks for calling! How can I help?"
# Policy the receptionist tells callers who want to cancel or move:
# cancellation_notice_hours = 24

# --- services: what callers can book ------------------------------------------------------
# A booking blocks its staff member (and room) from buffer_before minutes before its start to
# buffer_after minutes after its end; the database refuses any overlap of those spans.
[[services]]
id = {_string(service_id)}
name = {_string(answers.service)}
minutes = {answers.minutes}
# buffer_before = 0
# buffer_after = 10
# price = 40
# description = "One line the receptionist may read out."

# Another service, with buffers and a price (offered by the second staff member below):
# [[services]]
# id = "colour"
# name = "Colour"
# minutes = 90
# buffer_before = 10
# buffer_after = 15
# price = 120
# description = "Full colour, wash and blow-dry."

# --- staff: who gives which services, and when ---------------------------------------------
# Hours are weekly, e.g. "mon-fri 09:00-12:00 13:00-17:00, sat 10:00-14:00". A caller who
# asks for anyone gets the staff member with the fewest bookings that local day, then the one
# listed first.
[[staff]]
id = {_string(staff_id)}
name = {_string(answers.staff)}
services = [{_string(service_id)}]
hours = {_string(answers.hours)}
# closed_dates = ["2026-12-24"]

# A second staff member:
# [[staff]]
# id = "sam"
# name = "Sam"
# services = [{_string(service_id)}, "colour"]
# hours = "tue-sat 10:00-18:00"

# --- rooms: a service a room offers also needs one of those rooms, free and open -------------
# [[rooms]]
# id = "room-1"
# name = "Colour room"
# services = ["colour"]
# hours = "tue-sat 10:00-18:00"

# --- FAQ: short answers the receptionist may give ---------------------------------------------
# [[faq]]
# question = "Where can I park?"
# answer = "There is free parking behind the building."
"""
