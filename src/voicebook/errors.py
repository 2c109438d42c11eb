"""Typed errors of the voicebook SDK, built from the server's JSON error body (DESIGN §3).

Every error is a `VoicebookError` with `.code` (the stable snake_case code), `.message` (the one
sentence a voice agent can say), `.status` (the HTTP status, None when no answer came) and
`.request_id` (the server's `X-Request-ID`, for finding the request in its logs). Catch a family
to handle a kind of failure, or a leaf to handle one code:

    VoicebookError                        any failure
    ├── ConnectionFailed   connection_failed      the server could not be reached (`.url`)
    │   └── TimedOut       timeout                no answer within the client's timeout
    ├── InvalidInput       invalid_input, 422 · 400 · 405 · 413: the request itself is wrong
    │   ├── InvalidPhone          invalid_phone
    │   ├── InvalidTime           invalid_time
    │   ├── InPast                in_past
    │   ├── TooSoon               too_soon
    │   ├── TooFar                too_far
    │   ├── Closed                closed
    │   ├── OutsideHours          outside_hours
    │   ├── NotOnGrid             not_on_grid
    │   ├── IdempotencyConflict   idempotency_conflict (a key reused for a different request)
    │   ├── WrongCode             wrong_code      `.attempts_left`: tries left for this code
    │   └── CodeExpired           code_expired    send a new code
    ├── NotIdentified      not_identified (409)   identify_user first
    ├── NotFound           not_found, 404         unknown session, or not the caller's appointment
    ├── Conflict           409                    the request clashes with the current state
    │   ├── SlotTaken             slot_taken      `.alternatives`: the next free slots
    │   ├── AlreadyCancelled      already_cancelled
    │   ├── SessionEnded          session_ended
    │   ├── CallerFixed           caller_fixed    the line vouched for another number
    │   ├── NoCodeSent            no_code_sent    verify_caller without a code first
    │   └── IdentityMismatch      identity_mismatch (a LiveKit token for another identity)
    ├── Unauthorized       unauthorized, 401      missing or wrong service key
    ├── Forbidden          forbidden, 403         the caller may not do that (yet)
    │   └── VerificationRequired  verification_required: prove the number (verify_caller)
    ├── RateLimited        rate_limited, 429      `.retry_after` seconds
    │   ├── TooManyAttempts       too_many_attempts (a code given wrongly too often)   ┐ not
    │   ├── TooManyCodes          too_many_codes  (too many codes sent to the number)  │ retried
    │   └── TooManyTokens         too_many_tokens (the session's LiveKit token budget) ┘
    ├── ServiceUnavailable 503 · 502 · 504        try again later (`.retry_after` when given)
    │   ├── StoreUnavailable      store_unavailable
    │   ├── LiveKitNotConfigured  livekit_not_configured (a configuration problem: not retried)
    │   └── VerificationUnavailable  verification_unavailable (no code can be sent: not retried)
    ├── ServerError        internal_error, other 5xx
    └── UnexpectedResponse a success answer the SDK cannot read (wrong URL? version skew?)

A code the SDK does not know is mapped by its status (the `409` → `Conflict` column above), so a
newer server's codes still land in the right family; `.code` always keeps the server's code.
`.transient` says whether waiting may help: the clients retry a 429 or 503 only when it is (a
caller who got a code wrong too often gains nothing from the SDK asking again).

This module imports only pydantic and `voicebook.models`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

from voicebook.models import Slot

__all__ = [
    "AlreadyCancelled",
    "CallerFixed",
    "Closed",
    "CodeExpired",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "IdempotencyConflict",
    "IdentityMismatch",
    "InPast",
    "InvalidInput",
    "InvalidPhone",
    "InvalidTime",
    "LiveKitNotConfigured",
    "NoCodeSent",
    "NotFound",
    "NotIdentified",
    "NotOnGrid",
    "OutsideHours",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "SessionEnded",
    "SlotTaken",
    "StoreUnavailable",
    "TimedOut",
    "TooFar",
    "TooManyAttempts",
    "TooManyCodes",
    "TooManyTokens",
    "TooSoon",
    "Unauthorized",
    "UnexpectedResponse",
    "VerificationRequired",
    "VerificationUnavailable",
    "VoicebookError",
    "WrongCode",
    "error_from_body",
]


class VoicebookError(Exception):
    """A failed call: `.code`, `.message` (one sentence), `.status`, `.request_id`, `.details`."""

    default_code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "The voicebook server refused the request."
    transient: ClassVar[bool] = True
    """Whether the same request may succeed later (the clients retry only such 429s and 503s)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.details: dict[str, Any] = details or {}
        """Any further fields of the error object (e.g. `alternatives`)."""
        self.attempts = 1
        """How many attempts the client made before giving up with this error."""
        super().__init__(self.message)

    def __str__(self) -> str:
        facts = [self.code]
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.request_id:
            facts.append(f"request {self.request_id}")
        return f"{self.message} ({', '.join(facts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class ConnectionFailed(VoicebookError):
    """The server could not be reached (refused, reset, DNS, TLS...); `.url` says where."""

    default_code = "connection_failed"
    default_message = "The voicebook server could not be reached."

    def __init__(self, message: str | None = None, *, url: str = "", **kwargs: Any) -> None:
        self.url = url
        self.request_sent = False
        """True when the request may have reached the server before the connection failed."""
        super().__init__(message, **kwargs)


class TimedOut(ConnectionFailed):
    """The server did not answer within the client's timeout."""

    default_code = "timeout"
    default_message = "The voicebook server did not answer in time."


class InvalidInput(VoicebookError):
    default_code = "invalid_input"
    default_message = "Some of that request was not valid."


class InvalidPhone(InvalidInput):
    default_code = "invalid_phone"


class InvalidTime(InvalidInput):
    default_code = "invalid_time"


class InPast(InvalidInput):
    default_code = "in_past"


class TooSoon(InvalidInput):
    default_code = "too_soon"


class TooFar(InvalidInput):
    default_code = "too_far"


class Closed(InvalidInput):
    default_code = "closed"


class OutsideHours(InvalidInput):
    default_code = "outside_hours"


class NotOnGrid(InvalidInput):
    default_code = "not_on_grid"


class IdempotencyConflict(InvalidInput):
    default_code = "idempotency_conflict"


class WrongCode(InvalidInput):
    """The verification code does not match; `.attempts_left` tries remain for this code."""

    default_code = "wrong_code"
    default_message = "That code doesn't match."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        left = self.details.get("attempts_left")
        self.attempts_left: int | None = left if isinstance(left, int) else None


class CodeExpired(InvalidInput):
    default_code = "code_expired"
    default_message = "That code has expired; a new one can be sent."


class NotIdentified(VoicebookError):
    default_code = "not_identified"
    default_message = "I need your phone number before I can do that."


class NotFound(VoicebookError):
    default_code = "not_found"
    default_message = "That was not found."


class Conflict(VoicebookError):
    default_code = "conflict"
    default_message = "That clashes with the current state."


class SlotTaken(Conflict):
    """The time is booked; `.alternatives` are the next free slots the server offers instead."""

    default_code = "slot_taken"
    default_message = "Sorry, that time was just taken."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.alternatives: list[Slot] = []
        for item in self.details.get("alternatives") or []:
            try:
                self.alternatives.append(Slot.model_validate(item))
            except ValidationError:
                continue  # an alternative this SDK cannot read is no reason to lose the error


class AlreadyCancelled(Conflict):
    default_code = "already_cancelled"


class SessionEnded(Conflict):
    default_code = "session_ended"


class CallerFixed(Conflict):
    """The session's number came from the line (trusted): another number is refused."""

    default_code = "caller_fixed"
    default_message = "This conversation's caller is already known from the line."


class NoCodeSent(Conflict):
    default_code = "no_code_sent"
    default_message = "No code has been sent in this conversation yet."


class IdentityMismatch(Conflict):
    default_code = "identity_mismatch"


class Unauthorized(VoicebookError):
    default_code = "unauthorized"
    default_message = "A valid service key is required (VOICEBOOK_API_KEY)."


class Forbidden(VoicebookError):
    """The request is understood and authenticated, but the caller may not do it."""

    default_code = "forbidden"
    default_message = "That is not allowed."


class VerificationRequired(Forbidden):
    """The session's caller only claimed the number: earlier bookings need `verify_caller`."""

    default_code = "verification_required"
    default_message = "The caller must confirm the number with a code first."


class RateLimited(VoicebookError):
    """Too many requests; `.retry_after` is how many seconds the server asks us to wait."""

    default_code = "rate_limited"
    default_message = "Too many requests; please slow down."


class TooManyAttempts(RateLimited):
    """A code was given wrongly too often: send a new one (later). Not retried."""

    default_code = "too_many_attempts"
    default_message = "That code was entered wrongly too many times."
    transient = False


class TooManyCodes(RateLimited):
    """Too many codes were sent to this number lately. Not retried."""

    default_code = "too_many_codes"
    default_message = "Too many codes were sent to that number; please try again later."
    transient = False


class TooManyTokens(RateLimited):
    """The session has had every LiveKit token it may have. Not retried."""

    default_code = "too_many_tokens"
    default_message = "This conversation has had all the connection tokens it may have."
    transient = False


class ServiceUnavailable(VoicebookError):
    default_code = "service_unavailable"
    default_message = "The voicebook server is briefly unavailable; please try again."


class StoreUnavailable(ServiceUnavailable):
    default_code = "store_unavailable"


class LiveKitNotConfigured(ServiceUnavailable):
    default_code = "livekit_not_configured"
    transient = False


class VerificationUnavailable(ServiceUnavailable):
    """No code can be sent now (verification is off, or the sender failed). Not retried: the
    caller should hear at once that booking still works without it."""

    default_code = "verification_unavailable"
    default_message = "No verification code can be sent right now."
    transient = False


class ServerError(VoicebookError):
    default_code = "internal_error"
    default_message = "Something went wrong on the server."


class UnexpectedResponse(VoicebookError):
    default_code = "unexpected_response"
    default_message = "The server's answer could not be read."


_BY_CODE: dict[str, type[VoicebookError]] = {
    cls.default_code: cls
    for cls in (
        InvalidInput,
        InvalidPhone,
        InvalidTime,
        InPast,
        TooSoon,
        TooFar,
        Closed,
        OutsideHours,
        NotOnGrid,
        IdempotencyConflict,
        WrongCode,
        CodeExpired,
        NotIdentified,
        NotFound,
        SlotTaken,
        AlreadyCancelled,
        SessionEnded,
        CallerFixed,
        NoCodeSent,
        IdentityMismatch,
        Unauthorized,
        Forbidden,
        VerificationRequired,
        RateLimited,
        TooManyAttempts,
        TooManyCodes,
        TooManyTokens,
        StoreUnavailable,
        LiveKitNotConfigured,
        VerificationUnavailable,
        ServerError,
    )
}
_BY_CODE.update(
    bad_request=InvalidInput,
    method_not_allowed=InvalidInput,
    payload_too_large=InvalidInput,
)
_BY_STATUS: dict[int, type[VoicebookError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: InvalidInput,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
    429: RateLimited,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


def error_class(code: str | None, status: int | None) -> type[VoicebookError]:
    """The class for a code, else for the status family, else `VoicebookError`."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status is not None and status >= 500:
        return ServerError
    return VoicebookError


def error_from_body(
    status: int,
    body: Any,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> VoicebookError:
    """The typed error for an answer with `status` and parsed JSON `body` (any shape).

    `body` is normally `{"error": {"code", "message", ...}}`; anything else (a proxy's HTML page,
    an empty body) still gives an error of the status's family, with a generic sentence.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    cls = error_class(code, status)
    if retry_after is None and isinstance(details.get("retry_after"), (int, float)):
        retry_after = float(details["retry_after"])
    return cls(
        message or (None if cls is not VoicebookError else f"The server answered HTTP {status}."),
        code=code or (cls.default_code if cls is not VoicebookError else f"http_{status}"),
        status=status,
        request_id=request_id,
        retry_after=retry_after,
        details=details,
    )
