"""What the Calls tab shows of one session: the facts of its header, from a `SessionListing`.

Pure: the router reads the store and hands the records here. A phone number leaves this module
masked only; the cost is the one the summary holds once the call has ended (what the caller's
summary said), and until then the agent's running usage priced the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel

from voicebook.scheduling.cost import Prices, price
from voicebook.scheduling.phone import mask_phone
from voicebook.store.base import SessionListing

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CHANGES = {
    "book_appointment": "booked",
    "cancel_appointment": "cancelled",
    "modify_appointment": "moved",
}
"""The tools whose completed calls change the calendar, and what the outcome calls that."""


class CallCaller(BaseModel):
    phone_masked: str
    name: str | None
    """The name given in this call, else the one on file."""


class CallOutcome(BaseModel):
    """What the call did: `live` while it runs, then `booked`, `changed` (cancelled or moved
    only) or `none`; the counts are of completed calls, as the summary's actions are."""

    kind: Literal["live", "booked", "changed", "none"]
    booked: int = 0
    cancelled: int = 0
    moved: int = 0


class CallRow(BaseModel):
    session_id: str
    state: str
    live: bool
    caller: CallCaller | None
    identity_level: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    duration_s: float
    cost: dict[str, Any] | None
    outcome: CallOutcome
    tool_calls: int
    failures: int


def call_row(listing: SessionListing, prices: Prices, now: datetime) -> CallRow:
    """The header of one call as the console shows it."""
    session = listing.session
    live = session.state != "ended"
    changes = dict.fromkeys(_CHANGES.values(), 0)
    for (tool, status), count in listing.tool_calls.items():
        if status == "completed" and tool in _CHANGES:
            changes[_CHANGES[tool]] += count
    kind: Literal["live", "booked", "changed", "none"]
    if live:
        kind = "live"
    elif changes["booked"]:
        kind = "booked"
    elif changes["cancelled"] or changes["moved"]:
        kind = "changed"
    else:
        kind = "none"
    summary = session.summary or {}
    cost = summary.get("cost")
    if cost is None and session.usage:
        cost = price(session.usage, prices)
    end = session.ended_at or now
    caller = None
    if listing.phone is not None:
        caller = CallCaller(
            phone_masked=mask_phone(listing.phone), name=session.caller_name or listing.user_name
        )
    return CallRow(
        session_id=session.id,
        state=session.state,
        live=live,
        caller=caller,
        identity_level=session.identity_level if caller else None,
        started_at=session.created_at,
        updated_at=session.updated_at,
        ended_at=session.ended_at,
        end_reason=session.end_reason,
        duration_s=round(max((end - session.created_at).total_seconds(), 0.0), 3),
        cost=cost,
        outcome=CallOutcome(kind=kind, **changes),
        tool_calls=sum(listing.tool_calls.values()),
        failures=sum(n for (_, status), n in listing.tool_calls.items() if status == "failed"),
    )


def cursor(listing: SessionListing) -> str:
    """Where the next page starts: the row's start in whole microseconds since the epoch and
    its id (exact, whatever precision a store keeps)."""
    session = listing.session
    micros = (session.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{session.id}"


def parse_cursor(text: str) -> tuple[datetime, str] | None:
    """The (created_at, id) a cursor names, or None when it is not one of ours."""
    micros, dot, session_id = text.partition(".")
    if not dot or not session_id or not micros.isdigit() or len(micros) > 17:
        return None
    return EPOCH + timedelta(microseconds=int(micros)), session_id
