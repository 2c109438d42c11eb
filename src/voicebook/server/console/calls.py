"""The Calls tab's JSON: recent and live calls, newest first, and one call with its timeline.

The list is keyset-paged (`before` is the cursor the previous page ended with), so a page costs
the same however many calls there were and calls that start meanwhile shift nothing. One call's
timeline is its event log exactly as the session's WebSocket replays it, paged the same way
(`after`, `limit`); the page follows the same WebSocket for what comes next.

Session ids are shown to the operator, but they are capabilities: each request here names the
one its path or cursor holds as the request's session, so log lines carry it shortened.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from voicebook.models import PAGE_MAX, Summary
from voicebook.scheduling.errors import InvalidInput, SessionNotFound
from voicebook.server.browser import MAX_EVENT_ID, event_envelope
from voicebook.server.console.auth import Operator
from voicebook.server.console.call_views import CallRow, call_row, cursor, parse_cursor
from voicebook.server.dependencies import SESSION_ID, Ctx, SessionId
from voicebook.server.observability import session_id as session_var

router = APIRouter(prefix="/console/api/calls", tags=["console"], include_in_schema=False)
LIST_MAX = 100
"""The most calls one page lists."""
DIGIT_SEPARATORS = frozenset(" -.()+")
"""What may stand between the digits an operator types ("415 555-0123", "(0123)")."""


class CallPage(BaseModel):
    calls: list[CallRow]
    next_before: str | None
    """The cursor of the next (older) page; None on the last one."""


class CallDetail(BaseModel):
    call: CallRow
    summary: Summary | None
    events: list[dict[str, Any]]
    """Envelopes of the session's log after `after`, oldest first, as the WebSocket sends them."""
    next_after: int | None
    """The `after` of the next page of the log; None when this page reached its end."""


class BadCursor(InvalidInput):
    default_message = "That page of calls does not exist; start again from the newest calls."


class BadCallerDigits(InvalidInput):
    default_message = (
        "Search by the caller's number with two to fifteen digits, such as its last four."
    )


@router.get("", response_model=CallPage)
async def list_calls(
    _: Operator,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
    before: Annotated[str | None, Query(max_length=100)] = None,
    caller: Annotated[str | None, Query(max_length=40)] = None,
    state: Annotated[Literal["live", "ended"] | None, Query()] = None,
) -> CallPage:
    """A page of calls, newest first: live ones and ended ones alike, or only those whose
    caller's number ends with the digits of `caller` (spaces and dashes ignored), or only the
    live or the ended ones (`state`). The cursor pages within the same filter."""
    digits = None
    if caller is not None and caller.strip():
        digits = "".join(ch for ch in caller if ch.isdigit() and ch.isascii())
        if not 2 <= len(digits) <= 15 or any(
            ch not in DIGIT_SEPARATORS for ch in caller if not ch.isdigit()
        ):
            raise BadCallerDigits()
    after = None
    if before is not None:
        after = parse_cursor(before)
        if after is None or not SESSION_ID.match(after[1]):
            raise BadCursor()
        session_var.set(after[1])
    async with ctx.store.transaction(write=False) as tx:
        listings = await tx.recent_sessions(
            before=after,
            limit=limit,
            phone_ending=digits,
            live=None if state is None else state == "live",
        )
    now = ctx.service.clock()
    return CallPage(
        calls=[call_row(listing, ctx.service.prices, now) for listing in listings],
        next_before=cursor(listings[-1]) if len(listings) == limit else None,
    )


def _caller_digits(typed: str) -> str:
    """The digits of a search by number; BadCallerDigits unless it is 2-15 ASCII digits with
    only separators between them."""
    digits = "".join(ch for ch in typed if "0" <= ch <= "9")
    rest = (ch for ch in typed if not "0" <= ch <= "9")
    if not 2 <= len(digits) <= 15 or any(ch not in DIGIT_SEPARATORS for ch in rest):
        raise BadCallerDigits()
    return digits


@router.get("/{session_id}", response_model=CallDetail)
async def one_call(
    _: Operator,
    session_id: SessionId,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_MAX,
) -> CallDetail:
    """The call's header and a page of its timeline (every event: tool calls, transcript
    lines, status, the summary)."""
    async with ctx.store.transaction(write=False) as tx:
        listing = await tx.session_listing(session_id)
        if listing is None:
            raise SessionNotFound()
        events = await tx.events_after(session_id, after, limit)
    summary = listing.session.summary
    return CallDetail(
        call=call_row(listing, ctx.service.prices, ctx.service.clock()),
        summary=Summary.model_validate(summary) if summary else None,
        events=[event_envelope(event) for event in events],
        next_after=events[-1].id if len(events) == limit else None,
    )
