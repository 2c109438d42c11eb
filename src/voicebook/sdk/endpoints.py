"""One builder per endpoint (DESIGN §3–§4): arguments in, a `Call` (request + reader) out.

These functions are the single definition of every client method: `Client.identify_user` and
`AsyncClient.identify_user` are both made from `identify_user` here, with its signature and its
documentation, and differ only in how the call is sent. Building a call does no I/O.

Tool calls and agent reports carry an idempotency key: the one given (e.g. the LLM's tool-call
id) or a fresh uuid4 per call, reused by every retry of that call.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date as Date
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from voicebook.errors import InvalidInput
from voicebook.models import (
    TOOL_NAMES,
    TOOL_RESPONSES,
    AgentReportResponse,
    BookAppointmentResponse,
    BusinessAppointmentsResponse,
    CallerResponse,
    CancelAppointmentResponse,
    EndConversationResponse,
    EndSessionResponse,
    Event,
    FetchSlotsResponse,
    Health,
    IdentifyUserResponse,
    LiveKitTokenResponse,
    ModifyAppointmentResponse,
    PartOfDay,
    RetrieveAppointmentsResponse,
    SessionView,
    StartSessionResponse,
    ToolCallEvent,
    TranscriptLine,
    Usage,
    VerifyCallerResponse,
    WireModel,
)
from voicebook.sdk.protocol import Call, session_path

_events = TypeAdapter(list[Event])
_tool_calls = TypeAdapter(list[ToolCallEvent])


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields that are set (dates, models and the like made JSON)."""
    return to_jsonable_python({k: v for k, v in fields.items() if v is not None})


def _tool(tool: str, session_id: str, idempotency_key: str | None, /, **args: Any) -> Call[Any]:
    return Call(
        "POST",
        f"/tools/{tool}",
        TOOL_RESPONSES[tool].model_validate,
        json=_body(**{**args, "session_id": session_id}),
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        idempotent=True,
    )


# --- browser-facing ---------------------------------------------------------------------------


def start_session(
    *, phone: str | None = None, name: str | None = None
) -> Call[StartSessionResponse]:
    """Start a session (`POST /session/start`): its id, event WebSocket URL and state.

    As the browser page does, with no arguments. A back-end that has signed its user in passes
    the user's `phone` (and `name`) with the service key: the session starts *trusted* (its
    `user` and `identity_level` come back), so the caller is never asked for the number.
    Without the key that is `Unauthorized`. Rate-limited per client address (`RateLimited`,
    with `.retry_after`).
    """
    return Call(
        "POST",
        "/session/start",
        StartSessionResponse.model_validate,
        json=_body(phone=phone, name=name),
    )


def get_session(session_id: str) -> Call[SessionView]:
    """The session (`GET /session/{id}`): state, identified user (phone masked), timestamps,
    and the summary once it has ended. Unknown session: `NotFound`."""
    return Call("GET", session_path(session_id), SessionView.model_validate, idempotent=True)


def end_session(session_id: str) -> Call[EndSessionResponse]:
    """End the session as the page's hang-up does (`POST /session/{id}/end`); idempotent.

    Returns the session's summary (the same one on every call)."""
    return Call(
        "POST", session_path(session_id, "end"), EndSessionResponse.model_validate, idempotent=True
    )


def attest_caller(session_id: str, *, phone: str, name: str | None = None) -> Call[CallerResponse]:
    """Vouch for the session's caller (`POST /session/{id}/caller`, service key): `phone` came
    from a channel the business controls, e.g. a SIP call's caller id. The session becomes
    *trusted* for that number; the model can then neither ask for nor change it."""
    return Call(
        "POST",
        session_path(session_id, "caller"),
        CallerResponse.model_validate,
        json=_body(phone=phone, name=name),
        idempotent=True,  # attesting the same caller again changes nothing
    )


def livekit_token(
    session_id: str, *, identity: str | None = None, name: str | None = None
) -> Call[LiveKitTokenResponse]:
    """A LiveKit token for the session's room that dispatches the agent (`POST /livekit/token`).

    Without LiveKit configured on the server: `LiveKitNotConfigured`; ended session:
    `SessionEnded`."""
    return Call(
        "POST",
        "/livekit/token",
        LiveKitTokenResponse.model_validate,
        json=_body(session_id=session_id, identity=identity, name=name),
        idempotent=True,  # minting a token changes nothing
    )


def session_tools(
    session_id: str, *, after: int | None = None, limit: int | None = None
) -> Call[list[ToolCallEvent]]:
    """The session's tool calls, oldest first (`GET /session/{id}/tools`), a page at a time
    after event id `after` (the ids are the log's: `session_events`, `stream_events`)."""
    return Call(
        "GET",
        session_path(session_id, "tools"),
        _tool_calls.validate_python,
        params=_body(after=after, limit=limit),
        idempotent=True,
    )


def session_events(
    session_id: str, *, after: int | None = None, limit: int | None = None
) -> Call[list[Event]]:
    """The session's event log after event id `after` (`GET /session/{id}/events`).

    This is the log as one list; `stream_events` follows it live over the WebSocket."""
    return Call(
        "GET",
        session_path(session_id, "events"),
        _events.validate_python,
        params=_body(after=after, limit=limit),
        idempotent=True,
    )


# --- the eight tools (service key) ----------------------------------------------------------


def identify_user(
    session_id: str,
    *,
    phone: str | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
) -> Call[IdentifyUserResponse]:
    """Identify the caller by phone (any common form) and bind them to the session.

    Returns the user (phone masked), their `level` (claimed, verified, trusted) and the upcoming
    appointments they may see: a merely claimed number sees only this session's bookings, and
    `verification_required` says earlier ones exist behind `verify_caller`. Leave `phone` out
    when the line already vouched for the caller (a trusted session); another number there is
    `CallerFixed`. Unreadable number: `InvalidPhone`."""
    return _tool("identify_user", session_id, idempotency_key, phone=phone, name=name)


def verify_caller(
    session_id: str,
    *,
    code: str | None = None,
    idempotency_key: str | None = None,
) -> Call[VerifyCallerResponse]:
    """Prove the caller's claimed number with a one-time code sent to it.

    Without `code`: send (or resend) a code to the number (`status` "code_sent", `expires_at`).
    With the six digits the caller read back: check it (`status` "verified", and the caller's
    `upcoming` appointments, now all of them). Refusals: `WrongCode` (`.attempts_left`),
    `CodeExpired`, `TooManyAttempts`, `TooManyCodes`, `NoCodeSent`, `NotIdentified`,
    `VerificationUnavailable` (none of them retried)."""
    return _tool("verify_caller", session_id, idempotency_key, code=code)


def fetch_slots(
    session_id: str,
    *,
    service: str | None = None,
    staff: str | None = None,
    date: Date | str | None = None,
    part_of_day: PartOfDay | None = None,
    limit: int | None = None,
    idempotency_key: str | None = None,
) -> Call[FetchSlotsResponse]:
    """Free slots, soonest first, of `service` (id or name; default the first) with `staff`
    (id or name; default anyone): on local `date` (business zone) if given, optionally only the
    `part_of_day` ("morning", "afternoon", "evening"), at most `limit` (server default 5)."""
    return _tool(
        "fetch_slots",
        session_id,
        idempotency_key,
        service=service,
        staff=staff,
        date=date,
        part_of_day=part_of_day,
        limit=limit,
    )


def book_appointment(
    session_id: str,
    *,
    slot_id: str | None = None,
    start: datetime | str | None = None,
    service: str | None = None,
    staff: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    idempotency_key: str | None = None,
) -> Call[BookAppointmentResponse]:
    """Book the identified caller into `slot_id` (from `fetch_slots`; it names the service and
    staff member) or at `start` (of `service` with `staff`, or anyone who offers it).

    Taken: `SlotTaken` with `.alternatives`; not identified yet: `NotIdentified`; a time that
    cannot be booked: an `InvalidInput` (`InPast`, `OutsideHours`, `NotOnGrid`...)."""
    return _tool(
        "book_appointment",
        session_id,
        idempotency_key,
        slot_id=slot_id,
        start=start,
        service=service,
        staff=staff,
        name=name,
        notes=notes,
    )


def retrieve_appointments(
    session_id: str,
    *,
    include_past: bool = False,
    include_cancelled: bool = False,
    idempotency_key: str | None = None,
) -> Call[RetrieveAppointmentsResponse]:
    """The identified caller's appointments (upcoming and confirmed unless asked otherwise).

    A merely claimed number lists only this session's bookings; `verification_required` then
    says whether there is more behind `verify_caller`."""
    return _tool(
        "retrieve_appointments",
        session_id,
        idempotency_key,
        include_past=include_past,
        include_cancelled=include_cancelled,
    )


def cancel_appointment(
    session_id: str,
    *,
    appointment_id: str | None = None,
    start: datetime | str | None = None,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> Call[CancelAppointmentResponse]:
    """Cancel one of the caller's own appointments, by id or by its start (kept in history).

    Someone else's or unknown: `NotFound`; cancelled before: `AlreadyCancelled`."""
    return _tool(
        "cancel_appointment",
        session_id,
        idempotency_key,
        appointment_id=appointment_id,
        start=start,
        reason=reason,
    )


def modify_appointment(
    session_id: str,
    *,
    appointment_id: str | None = None,
    start: datetime | str | None = None,
    new_slot_id: str | None = None,
    new_start: datetime | str | None = None,
    staff: str | None = None,
    idempotency_key: str | None = None,
) -> Call[ModifyAppointmentResponse]:
    """Move one of the caller's appointments (by id or start) to `new_slot_id` or `new_start`
    (with `staff`, else the same person when free), in one transaction: if the new time is taken
    (`SlotTaken`) the old one is untouched."""
    return _tool(
        "modify_appointment",
        session_id,
        idempotency_key,
        appointment_id=appointment_id,
        start=start,
        new_slot_id=new_slot_id,
        new_start=new_start,
        staff=staff,
    )


def end_conversation(
    session_id: str,
    *,
    preferences: Sequence[str] | None = None,
    recap: str | None = None,
    idempotency_key: str | None = None,
) -> Call[EndConversationResponse]:
    """Close the session: the server builds and returns the summary (with the agent's `recap`
    and the caller's `preferences`) and pushes `summary` and `session_closed` events."""
    return _tool(
        "end_conversation",
        session_id,
        idempotency_key,
        preferences=list(preferences) if preferences is not None else None,
        recap=recap,
    )


def call_tool(
    name: str,
    session_id: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> Call[WireModel]:
    """Call tool `name` with the `arguments` an LLM produced; its own response model comes back.

    For agents that dispatch tool calls by name: pass the LLM's tool-call id as the key. The
    session is always `session_id` (a `session_id` among the arguments is ignored)."""
    if name not in TOOL_NAMES:
        raise InvalidInput(
            f"There is no tool called {name!r}; the tools are {', '.join(TOOL_NAMES)}.",
            code="unknown_tool",
        )
    return _tool(name, session_id, idempotency_key, **dict(arguments or {}))


# --- the business (service key) ------------------------------------------------------------


def business_appointments(
    *,
    date: Date | str | None = None,
    resource: str | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> Call[BusinessAppointmentsResponse]:
    """The business's appointments starting on local `date` (business zone; default today
    there), every status, ordered by start then id (`GET /business/appointments`, service key).

    `resource`: only this staff member's or room's (id or name; unknown: `NotFound`). A page
    holds at most `limit` (server default 50, at most 200); pass its `next` as `after` for the
    following one (`next` is None on the last page). Phones come masked."""
    return Call(
        "GET",
        "/business/appointments",
        BusinessAppointmentsResponse.model_validate,
        params=_body(date=date, resource=resource, after=after, limit=limit),
        idempotent=True,
    )


# --- the agent's reports and operations -----------------------------------------------------


def report(
    session_id: str,
    *,
    transcript: Sequence[TranscriptLine | Mapping[str, Any]] | None = None,
    usage: Usage | Mapping[str, Any] | None = None,
    recap: str | None = None,
    hangup: bool = False,
    idempotency_key: str | None = None,
) -> Call[AgentReportResponse]:
    """Report transcript lines, usage running totals and the recap (`POST /agent/report`);
    `hangup=True` says the caller left and ends the session."""
    return Call(
        "POST",
        "/agent/report",
        AgentReportResponse.model_validate,
        json=_body(
            session_id=session_id,
            transcript=list(transcript) if transcript is not None else None,
            usage=usage,
            recap=recap,
            hangup=hangup,
        ),
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        idempotent=True,
    )


def health() -> Call[Health]:
    """Liveness (`GET /healthz`): the server process answers, and its `version` (None from a
    server older than the field)."""
    return Call("GET", "/healthz", Health.model_validate, idempotent=True)


def ready() -> Call[Health]:
    """Readiness (`GET /readyz`): the server reaches its store; else `StoreUnavailable` (which
    is retried like any 503, so with the default policy this waits up to 30 s for readiness)."""
    return Call("GET", "/readyz", Health.model_validate, idempotent=True)
