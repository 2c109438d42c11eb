"""Wire models shared by the server and the SDK (DESIGN §3–§4).

These are the JSON shapes an existing frontend and the agent already speak: field names here are a
contract. Extra fields may be added; none may be renamed or removed.
"""

from __future__ import annotations

import re
from datetime import date as Date
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

ToolName = Literal[
    "identify_user",
    "verify_caller",
    "fetch_slots",
    "book_appointment",
    "retrieve_appointments",
    "cancel_appointment",
    "modify_appointment",
    "end_conversation",
]
TOOL_NAMES: tuple[str, ...] = ToolName.__args__
SessionState = Literal["connected", "active", "ended"]
IdentityLevel = Literal["claimed", "verified", "trusted"]
"""How far the session's caller is proved (DESIGN §4): trusted (a channel the business controls
vouches for the number), verified (a one-time code sent to it came back), claimed (only said)."""
AppointmentStatus = Literal["confirmed", "cancelled", "rescheduled"]
VerifyStatus = Literal["code_sent", "verified"]
ActionKind = Literal["booked", "cancelled", "rescheduled"]
ToolCallStatus = Literal["started", "completed", "failed"]
PartOfDay = Literal["morning", "afternoon", "evening"]
CODE_DIGITS = 6
PAGE_MAX = 500
"""Most events (or tool calls) one GET of a session's log returns; clients page with `after`."""
SLOT_ID_MAX = 160
MAX_SLOTS = 200
DEFAULT_SLOTS = 5
VERSION_HEADER = "X-Voicebook-Version"
"""The response header on every HTTP answer carrying the server's version."""


EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""Instants and dates outside these years cannot be anything the business booked or can book;
near year 1 or 9999 the offset arithmetic would overflow, so they are refused as invalid times."""
MAX_COUNT = 1_000_000_000
"""Bound of a usage count (tokens, characters) for one session."""
MAX_SECONDS = 7 * 24 * 3600.0
"""Bound of a usage duration for one session."""
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""Characters no stored text may hold (see `unstorable_text`)."""


def known_values(literal: Any) -> str:
    """The description of a field the server fills from a closed set that may grow.

    Such fields are typed `str`, not `Literal`, in what clients read (forward compatibility,
    DESIGN §3): an SDK deployed today must accept the value a newer server adds. The values known
    now are documented here instead."""
    values = ", ".join(f"`{value}`" for value in get_args(literal))
    return f"Known values: {values}; a newer server may send others (accept them)."


class WireModel(BaseModel):
    """Numbers on the wire are finite: `Infinity`/`NaN` (which Python's JSON reads) are refused."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def unstorable_text(value: Any) -> bool:
    """True when a string anywhere in `value` (keys too) holds U+0000, which Postgres text cannot
    store, or a lone surrogate, which is not Unicode text: stored on SQLite it makes every later
    read of the row fail to encode. Iterative, so any nesting depth is safe."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


def _in_bookable_years(value: datetime | Date) -> datetime | Date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise PydanticCustomError(
            "time_out_of_range",
            "times must fall between the years {earliest} and {latest}",
            {"earliest": EARLIEST_YEAR, "latest": LATEST_YEAR},
        )
    return value


Instant = Annotated[datetime, AfterValidator(_in_bookable_years)]
"""A time a caller gives (ISO 8601), within the years the business can book."""
LocalDate = Annotated[Date, AfterValidator(_in_bookable_years)]


class Inbound(WireModel):
    """Everything a client sends: unknown fields are refused (a misspelt argument is an error,
    not silently lost), and every text is storable (see `unstorable_text`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if unstorable_text(data):
            raise ValueError("text cannot contain NUL characters or unpaired surrogates")
        return data


class Request(Inbound):
    """A tool call (or an agent report): always for one session."""

    session_id: str = Field(min_length=1, max_length=64)


# --- results -----------------------------------------------------------------------------------


class Slot(WireModel):
    slot_id: str
    start: datetime
    end: datetime
    label: str = Field(
        description="Speakable, in the business zone: 'Tuesday, December 2 at 3:00 PM' (and "
        "'with Dr. Lee' when there is more than one staff member)"
    )
    service: str | None = Field(default=None, description="The service's id.")
    service_name: str | None = None
    resource: str | None = Field(default=None, description="The staff member's (resource) id.")
    resource_name: str | None = None


class Appointment(WireModel):
    id: str
    start: datetime
    end: datetime
    status: str = Field(description=known_values(AppointmentStatus))
    name: str | None = None
    notes: str | None = None
    label: str
    service: str | None = None
    service_name: str | None = None
    resource: str | None = Field(default=None, description="The staff member (resource) id.")
    resource_name: str | None = None
    room: str | None = Field(default=None, description="The room it also holds, if any.")


class User(WireModel):
    id: str
    name: str | None = None
    phone_masked: str


# --- the eight tools -----------------------------------------------------------------------------


class IdentifyUserRequest(Request):
    phone: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        examples=["(415) 555-0123"],
        description="The number the caller said; leave out when the line already vouched for it.",
    )
    name: str | None = Field(default=None, max_length=200)


class IdentifyUserResponse(WireModel):
    user: User
    upcoming: list[Appointment] = Field(
        description="Upcoming appointments the caller may see: all of theirs once the number is "
        "verified or trusted, else only those booked in this session."
    )
    returning: bool = Field(description="A known caller (only said once the number is proved).")
    level: str = Field(description=known_values(IdentityLevel))
    verification_required: bool = Field(
        default=False,
        description="Earlier bookings stay hidden until the caller proves the number "
        "(verify_caller).",
    )


class VerifyCallerRequest(Request):
    code: str | None = Field(
        default=None,
        max_length=20,
        description="The six-digit code the caller read back; leave out to send (or resend) one.",
    )

    @field_validator("code")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = "".join(ch for ch in value if ch not in " -.")
        if not (digits.isascii() and digits.isdigit() and len(digits) == CODE_DIGITS):
            raise ValueError(f"the code is {CODE_DIGITS} digits")
        return digits


class VerifyCallerResponse(WireModel):
    status: str = Field(description=known_values(VerifyStatus))
    level: str = Field(description=known_values(IdentityLevel))
    user: User
    upcoming: list[Appointment] = Field(
        default_factory=list, description="Once verified: the caller's upcoming appointments."
    )
    expires_at: datetime | None = Field(default=None, description="When a sent code expires.")


class FetchSlotsRequest(Request):
    service: str | None = Field(
        default=None, max_length=100, description="Service id or name (default: the first)."
    )
    staff: str | None = Field(
        default=None, max_length=100, description="Staff id or name; leave out for anyone."
    )
    date: LocalDate | None = Field(default=None, description="Local date in the business zone.")
    part_of_day: PartOfDay | None = None
    limit: int = Field(default=DEFAULT_SLOTS, ge=1, le=MAX_SLOTS)


class FetchSlotsResponse(WireModel):
    slots: list[Slot]
    timezone: str


class BookAppointmentRequest(Request):
    slot_id: str | None = Field(default=None, max_length=SLOT_ID_MAX)
    start: Instant | None = Field(
        default=None, description="ISO 8601; without an offset it is read in the business zone."
    )
    service: str | None = Field(
        default=None, max_length=100, description="With `start`: the service (default: the first)."
    )
    staff: str | None = Field(
        default=None, max_length=100, description="With `start`: the staff member (or anyone)."
    )
    name: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_time(self) -> BookAppointmentRequest:
        if (self.slot_id is None) == (self.start is None):
            raise ValueError("give exactly one of slot_id or start")
        return self


class BookAppointmentResponse(WireModel):
    appointment: Appointment


class RetrieveAppointmentsRequest(Request):
    include_past: bool = False
    include_cancelled: bool = False


class RetrieveAppointmentsResponse(WireModel):
    appointments: list[Appointment]
    verification_required: bool = Field(
        default=False,
        description="Only this session's bookings are listed until the caller proves the number.",
    )


class CancelAppointmentRequest(Request):
    appointment_id: str | None = Field(default=None, max_length=64)
    start: Instant | None = None
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_target(self) -> CancelAppointmentRequest:
        if (self.appointment_id is None) == (self.start is None):
            raise ValueError("give exactly one of appointment_id or start")
        return self


class CancelAppointmentResponse(WireModel):
    appointment: Appointment


class ModifyAppointmentRequest(Request):
    appointment_id: str | None = Field(default=None, max_length=64)
    start: Instant | None = Field(default=None, description="Start of the appointment to move.")
    new_slot_id: str | None = Field(default=None, max_length=SLOT_ID_MAX)
    new_start: Instant | None = None
    staff: str | None = Field(
        default=None,
        max_length=100,
        description="With `new_start`: move to this staff member (default: the same one if free).",
    )

    @model_validator(mode="after")
    def _targets(self) -> ModifyAppointmentRequest:
        if (self.appointment_id is None) == (self.start is None):
            raise ValueError("give exactly one of appointment_id or start")
        if (self.new_slot_id is None) == (self.new_start is None):
            raise ValueError("give exactly one of new_slot_id or new_start")
        return self


class ModifyAppointmentResponse(WireModel):
    appointment: Appointment
    previous: Appointment


class EndConversationRequest(Request):
    preferences: list[str] = Field(default_factory=list, max_length=20)
    recap: str | None = Field(default=None, max_length=4000)


class SummaryAppointment(WireModel):
    """A booked appointment as the summary shows it: `date`/`time` are local (business zone)."""

    id: str
    contact_number: str
    name: str | None = None
    date: str = Field(description="YYYY-MM-DD in the business zone")
    time: str = Field(description="24-hour HH:MM in the business zone")
    status: str = Field(description=known_values(AppointmentStatus))
    start: datetime
    end: datetime


class SummaryAction(WireModel):
    kind: str = Field(description=known_values(ActionKind))
    appointment_id: str
    label: str
    previous_label: str | None = None


class Summary(WireModel):
    session_id: str
    contact_number: str | None
    summary: str
    booked_appointments: list[SummaryAppointment]
    preferences: list[str]
    created_at: datetime
    actions: list[SummaryAction] = Field(default_factory=list)
    cost: dict[str, Any] | None = None
    duration_s: float | None = None


class EndConversationResponse(WireModel):
    summary: Summary


# --- what the agent reports -----------------------------------------------------------------------


class Usage(WireModel):
    """Running totals for the whole session (a later report replaces smaller figures)."""

    model_config = ConfigDict(extra="forbid")
    llm_model: str | None = Field(default=None, max_length=200)
    llm_input_tokens: int = Field(default=0, ge=0, le=MAX_COUNT)
    llm_cached_tokens: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        description="Of the input tokens, those served from the provider's prompt cache.",
    )
    llm_output_tokens: int = Field(default=0, ge=0, le=MAX_COUNT)
    stt_seconds: float = Field(default=0, ge=0, le=MAX_SECONDS)
    tts_characters: int = Field(default=0, ge=0, le=MAX_COUNT)
    avatar_seconds: float = Field(default=0, ge=0, le=MAX_SECONDS)


class TranscriptLine(WireModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "agent"]
    text: str = Field(min_length=1, max_length=4000)
    final: bool = True


class AgentReport(Request):
    """Transcript lines, usage and the recap, sent by the agent in batches during the call."""

    transcript: list[TranscriptLine] = Field(default_factory=list, max_length=200)
    usage: Usage | None = None
    recap: str | None = Field(default=None, max_length=4000)
    hangup: bool = Field(default=False, description="The caller left: end the session now.")


class AgentReportResponse(WireModel):
    session_id: str
    state: str = Field(description=known_values(SessionState))
    events: int = Field(description="How many events this report appended.")


TOOL_REQUESTS: dict[str, type[Request]] = {
    "identify_user": IdentifyUserRequest,
    "verify_caller": VerifyCallerRequest,
    "fetch_slots": FetchSlotsRequest,
    "book_appointment": BookAppointmentRequest,
    "retrieve_appointments": RetrieveAppointmentsRequest,
    "cancel_appointment": CancelAppointmentRequest,
    "modify_appointment": ModifyAppointmentRequest,
    "end_conversation": EndConversationRequest,
}
TOOL_RESPONSES: dict[str, type[WireModel]] = {
    "identify_user": IdentifyUserResponse,
    "verify_caller": VerifyCallerResponse,
    "fetch_slots": FetchSlotsResponse,
    "book_appointment": BookAppointmentResponse,
    "retrieve_appointments": RetrieveAppointmentsResponse,
    "cancel_appointment": CancelAppointmentResponse,
    "modify_appointment": ModifyAppointmentResponse,
    "end_conversation": EndConversationResponse,
}


# --- sessions and events ------------------------------------------------------------------------


class ToolCallEvent(WireModel):
    id: str = Field(description="The tool call's idempotency key (the LLM's tool-call id).")
    name: str
    status: str = Field(description=known_values(ToolCallStatus))
    detail: str = Field(description="One human sentence; phones masked.")
    timestamp: datetime
    args: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    duration_ms: float | None = None


EventType = Literal["status", "tool_call", "transcript", "summary", "session_closed"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
EventState = Literal["connected", "ended"]
"""The states a `status` event carries (the page knows only these); `active` is in GET /session."""


class StatusPayload(WireModel):
    session_id: str
    state: str = Field(description=known_values(EventState))


class TranscriptPayload(WireModel):
    role: str = Field(description=known_values(Literal["user", "agent"]))
    text: str
    final: bool = True


class SessionClosedPayload(WireModel):
    session_id: str


class EventEnvelope(WireModel):
    """What every event has, whatever its type: the typed events below add `type` and `payload`."""

    id: int = Field(description="Increasing per session; `?after=<id>` resumes after it.")
    session_id: str
    timestamp: datetime


class StatusEvent(EventEnvelope):
    type: Literal["status"]
    payload: StatusPayload


class ToolEvent(EventEnvelope):
    type: Literal["tool_call"]
    payload: ToolCallEvent


class TranscriptEvent(EventEnvelope):
    type: Literal["transcript"]
    payload: TranscriptPayload


class SummaryEvent(EventEnvelope):
    type: Literal["summary"]
    payload: Summary


class SessionClosedEvent(EventEnvelope):
    type: Literal["session_closed"]
    payload: SessionClosedPayload


class UnknownEvent(EventEnvelope):
    """An event this SDK cannot read as its type: one a newer server added, or a known type
    whose payload is not what this version expects. Its raw `payload` is kept, so a client can
    skip, log or pass it on instead of failing on it."""

    type: str = Field(json_schema_extra={"not": {"enum": list(EVENT_TYPES)}})
    payload: dict[str, Any]


def _event_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in EVENT_TYPES else "unknown"


TypedEvent = Annotated[
    Annotated[StatusEvent, Tag("status")]
    | Annotated[ToolEvent, Tag("tool_call")]
    | Annotated[TranscriptEvent, Tag("transcript")]
    | Annotated[SummaryEvent, Tag("summary")]
    | Annotated[SessionClosedEvent, Tag("session_closed")]
    | Annotated[UnknownEvent, Tag("unknown")],
    Discriminator(_event_tag),
]
"""An event with its payload typed by `type`; any other type is an `UnknownEvent`."""
_typed_event: TypeAdapter[TypedEvent] = TypeAdapter(TypedEvent)


class Event(WireModel):
    """One event of a session's log (WebSocket and GET /session/{id}/events).

    `type` and `payload` are read as sent, so an event type a newer server adds never fails the
    stream; `typed` is the same event with its payload as its model (`StatusEvent`, `ToolEvent`,
    `TranscriptEvent`, `SummaryEvent`, `SessionClosedEvent`, else `UnknownEvent`). The OpenAPI
    schema shows that union."""

    id: int
    type: str = Field(description=known_values(EventType))
    session_id: str
    timestamp: datetime
    payload: dict[str, Any]

    @property
    def typed(self) -> TypedEvent:
        """This event with a typed payload; never raises (an unreadable one is `UnknownEvent`)."""
        fields = self.model_dump()
        try:
            return _typed_event.validate_python(fields)
        except ValidationError:
            return UnknownEvent.model_validate(fields)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Documented as the union of typed events, so generated clients get typed payloads."""
        return handler(_typed_event.core_schema)


class ErrorDetail(WireModel):
    code: str
    message: str


class ErrorBody(WireModel):
    error: ErrorDetail


# --- browser-facing endpoints ---------------------------------------------------------------------


class CallerRequest(Inbound):
    """A caller whose number a channel the business controls vouches for (service key only)."""

    phone: str = Field(min_length=1, max_length=100, examples=["+14155550123"])
    name: str | None = Field(default=None, max_length=200)


class StartSessionRequest(Inbound):
    """Empty from a browser; a signed-in back-end (service key) may name the caller."""

    phone: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=200)


class StartSessionResponse(WireModel):
    session_id: str
    ws_url: str = Field(description="The session's event WebSocket (replays, then streams).")
    state: str = Field(description=known_values(SessionState))
    created_at: datetime
    user: User | None = None
    identity_level: str | None = Field(default=None, description=known_values(IdentityLevel))


class CallerResponse(WireModel):
    session_id: str
    user: User
    identity_level: str = Field(description=known_values(IdentityLevel))
    returning: bool


class LiveKitTokenRequest(Inbound):
    session_id: str = Field(min_length=1, max_length=64)
    identity: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=200)


class LiveKitTokenResponse(WireModel):
    token: str
    url: str
    room: str
    identity: str


class SessionView(WireModel):
    session_id: str
    state: str = Field(description=known_values(SessionState))
    user: User | None
    identity_level: str | None = Field(default=None, description=known_values(IdentityLevel))
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    summary: Summary | None = None


class EndSessionResponse(WireModel):
    summary: Summary


class Health(WireModel):
    status: str
    version: str | None = Field(
        default=None,
        description="The server's version (`/healthz`; also the X-Voicebook-Version header).",
    )


# --- the business's read API (service key) --------------------------------------------------------

APPOINTMENTS_PAGE_MAX = 200
"""Most appointments one GET of the business's day returns; clients follow `next`."""
APPOINTMENTS_PAGE_DEFAULT = 50


class BusinessAppointment(Appointment):
    """An appointment as the business sees it: who booked it (phone masked), with whom, where."""

    room_name: str | None = None
    phone_masked: str = Field(description="The caller's number, masked ('***4567').")
    created_at: datetime
    changed_by: str | None = Field(
        default=None,
        description="Who made it what it is (booked, cancelled, moved): 'caller' through the "
        "tools, 'operator' from the console; null for changes made before this was recorded. "
        "Other values may come: show them as they are.",
    )
    changed_by_operator: str | None = Field(
        default=None,
        description="The console account that made the change when changed_by is 'operator' and "
        "the operator signed in with their own name; null for the service key or the shared "
        "console password.",
    )


class BusinessAppointmentsResponse(WireModel):
    date: Date = Field(description="The local day (business zone) these appointments start on.")
    timezone: str
    resource: str | None = Field(default=None, description="The resource asked for, if any.")
    appointments: list[BusinessAppointment] = Field(
        description="Ordered by start, then id; every status (cancelled and moved ones too)."
    )
    next: str | None = Field(
        default=None, description="Pass as `after` for the next page; null on the last page."
    )
