"""Wire models shared by the server and the SDK (DESIGN §3–§4).

These are the JSON shapes an existing frontend and the agent already speak: field names here are a
contract. Extra fields may be added; none may be renamed or removed.
"""

from __future__ import annotations

from datetime import date as Date
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
PartOfDay = Literal["morning", "afternoon", "evening"]
CODE_DIGITS = 6
MAX_SLOTS = 200
DEFAULT_SLOTS = 5


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


def contains_nul(value: Any) -> bool:
    """True when a string anywhere in `value` holds U+0000 (which Postgres text cannot store)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(contains_nul(v) for v in value)
    return False


class Request(WireModel):
    """Tool requests refuse unknown fields so a misspelt argument is an error, not silently lost."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    session_id: str = Field(min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if contains_nul(data):
            raise ValueError("text cannot contain NUL characters")
        return data


# --- results -----------------------------------------------------------------------------------


class Slot(WireModel):
    slot_id: str
    start: datetime
    end: datetime
    label: str = Field(
        description="Speakable, in the business zone: 'Tuesday, December 2 at 3:00 PM'"
    )


class Appointment(WireModel):
    id: str
    start: datetime
    end: datetime
    status: AppointmentStatus
    name: str | None = None
    notes: str | None = None
    label: str


class User(WireModel):
    id: str
    name: str | None = None
    phone_masked: str


# --- the seven tools -----------------------------------------------------------------------------


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
    level: IdentityLevel
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
    status: Literal["code_sent", "verified"]
    level: IdentityLevel
    user: User
    upcoming: list[Appointment] = Field(
        default_factory=list, description="Once verified: the caller's upcoming appointments."
    )
    expires_at: datetime | None = Field(default=None, description="When a sent code expires.")


class FetchSlotsRequest(Request):
    date: Date | None = Field(default=None, description="Local date in the business zone.")
    part_of_day: PartOfDay | None = None
    limit: int = Field(default=DEFAULT_SLOTS, ge=1, le=MAX_SLOTS)


class FetchSlotsResponse(WireModel):
    slots: list[Slot]
    timezone: str


class BookAppointmentRequest(Request):
    slot_id: str | None = Field(default=None, max_length=64)
    start: datetime | None = Field(
        default=None, description="ISO 8601; without an offset it is read in the business zone."
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
    start: datetime | None = None
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
    start: datetime | None = Field(default=None, description="Start of the appointment to move.")
    new_slot_id: str | None = Field(default=None, max_length=64)
    new_start: datetime | None = None

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
    status: AppointmentStatus
    start: datetime
    end: datetime


class SummaryAction(WireModel):
    kind: Literal["booked", "cancelled", "rescheduled"]
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
    llm_input_tokens: int = Field(default=0, ge=0)
    llm_output_tokens: int = Field(default=0, ge=0)
    stt_seconds: float = Field(default=0, ge=0)
    tts_characters: int = Field(default=0, ge=0)
    avatar_seconds: float = Field(default=0, ge=0)


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
    state: SessionState
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
    status: Literal["started", "completed", "failed"]
    detail: str = Field(description="One human sentence; phones masked.")
    timestamp: datetime
    args: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    duration_ms: float | None = None


EventType = Literal["status", "tool_call", "transcript", "summary", "session_closed"]


class Event(WireModel):
    id: int
    type: EventType
    session_id: str
    timestamp: datetime
    payload: dict[str, Any]


class ErrorDetail(WireModel):
    code: str
    message: str


class ErrorBody(WireModel):
    error: ErrorDetail


# --- browser-facing endpoints ---------------------------------------------------------------------


class CallerRequest(WireModel):
    """A caller whose number a channel the business controls vouches for (service key only)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    phone: str = Field(min_length=1, max_length=100, examples=["+14155550123"])
    name: str | None = Field(default=None, max_length=200)


class StartSessionRequest(WireModel):
    """Empty from a browser; a signed-in back-end (service key) may name the caller."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    phone: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=200)


class StartSessionResponse(WireModel):
    session_id: str
    ws_url: str = Field(description="The session's event WebSocket (replays, then streams).")
    state: SessionState
    created_at: datetime
    user: User | None = None
    identity_level: IdentityLevel | None = None


class CallerResponse(WireModel):
    session_id: str
    user: User
    identity_level: IdentityLevel
    returning: bool


class LiveKitTokenRequest(WireModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
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
    state: SessionState
    user: User | None
    identity_level: IdentityLevel | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    summary: Summary | None = None


class EndSessionResponse(WireModel):
    summary: Summary


class Health(WireModel):
    status: str
