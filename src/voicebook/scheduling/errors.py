"""Typed domain errors with stable codes.

Every failure the scheduling domain can report is a `DomainError` subclass: `code` is the stable
snake_case identifier clients switch on, `message` is one sentence a voice agent can say to the
caller, and `status` is the HTTP status the server answers with (kept here so the mapping lives in
one place).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A failure the caller can understand and recover from."""

    code: ClassVar[str] = "domain_error"
    status: ClassVar[int] = 422
    default_message: ClassVar[str] = "That request could not be completed."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the wire contract (DESIGN §3)."""
        return {"code": self.code, "message": self.message, **self.extra}


class InvalidPhone(DomainError):
    code = "invalid_phone"
    default_message = (
        "I couldn't understand that phone number; could you say it again, digit by digit?"
    )


class InvalidInput(DomainError):
    code = "invalid_input"
    default_message = "Some of that request was not valid."


class NotIdentified(DomainError):
    code = "not_identified"
    status = 409
    default_message = "I need your phone number before I can do that."


class InvalidTime(DomainError):
    code = "invalid_time"
    default_message = "I couldn't understand that time; could you say the date and time again?"


class InPast(DomainError):
    code = "in_past"
    default_message = "That time has already passed."


class TooSoon(DomainError):
    code = "too_soon"
    default_message = "That time is too soon to book."


class TooFar(DomainError):
    code = "too_far"
    default_message = "That date is too far ahead to book."


class Closed(DomainError):
    code = "closed"
    default_message = "We're closed on that day."


class OutsideHours(DomainError):
    code = "outside_hours"
    default_message = "That time is outside our opening hours."


class NotOnGrid(DomainError):
    code = "not_on_grid"
    default_message = "Appointments don't start at that time."


class SlotTaken(DomainError):
    code = "slot_taken"
    status = 409
    default_message = "Sorry, that time was just taken."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "I couldn't find that appointment."


class SessionNotFound(NotFound):
    default_message = "That session does not exist."


class AlreadyCancelled(DomainError):
    code = "already_cancelled"
    status = 409
    default_message = "That appointment is already cancelled."


class SessionEnded(DomainError):
    code = "session_ended"
    status = 409
    default_message = "This conversation has already ended."


class IdentityMismatch(DomainError):
    """`POST /livekit/token` with another identity than the session's first token fixed."""

    code = "identity_mismatch"
    status = 409
    default_message = (
        "This conversation is already joined under another identity; "
        "ask again without one, or with the same one."
    )


class TooManyTokens(DomainError):
    """The session has had all its LiveKit tokens (VOICEBOOK_TOKEN_MINTS_PER_SESSION)."""

    code = "too_many_tokens"
    status = 429
    default_message = (
        "This conversation has had all the connection tokens it may have; "
        "please start a new conversation."
    )


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    default_message = (
        "That request key was already used for a different request; please retry with a new key."
    )


class StoreUnavailable(DomainError):
    code = "store_unavailable"
    status = 503
    default_message = "The booking system is briefly unavailable; please try again in a moment."


class VerificationRequired(DomainError):
    code = "verification_required"
    status = 403
    default_message = (
        "To look at or change bookings made before this call, I need to confirm the number is "
        "yours: I can text a six-digit code to it."
    )


class CallerFixed(DomainError):
    code = "caller_fixed"
    status = 409
    default_message = (
        "This call comes from a number we already know, so I can only help with bookings "
        "for that number."
    )


class NoCodeSent(DomainError):
    code = "no_code_sent"
    status = 409
    default_message = "I haven't sent you a code yet; shall I text one to your number?"


class WrongCode(DomainError):
    code = "wrong_code"
    default_message = "That code doesn't match; could you read it to me again?"


class CodeExpired(DomainError):
    code = "code_expired"
    default_message = "That code has expired; I can send you a new one."


class TooManyAttempts(DomainError):
    code = "too_many_attempts"
    status = 429
    default_message = (
        "That code was entered wrongly too many times; I can send you a new one in a while."
    )


class TooManyCodes(DomainError):
    code = "too_many_codes"
    status = 429
    default_message = (
        "I've already sent several codes to that number; please try again a little later."
    )


class VerificationUnavailable(DomainError):
    code = "verification_unavailable"
    status = 503
    default_message = "I can't send a code right now; I can still book a new appointment for you."


ERROR_CLASSES: dict[str, type[DomainError]] = {
    cls.code: cls
    for cls in (
        InvalidPhone,
        InvalidInput,
        NotIdentified,
        InvalidTime,
        InPast,
        TooSoon,
        TooFar,
        Closed,
        OutsideHours,
        NotOnGrid,
        SlotTaken,
        NotFound,
        AlreadyCancelled,
        SessionEnded,
        IdentityMismatch,
        TooManyTokens,
        IdempotencyConflict,
        StoreUnavailable,
        VerificationRequired,
        CallerFixed,
        NoCodeSent,
        WrongCode,
        CodeExpired,
        TooManyAttempts,
        TooManyCodes,
        VerificationUnavailable,
    )
}
"""Code → class, so a stored or transmitted error can be raised again as its own type."""


def error_from_dict(data: dict[str, Any]) -> DomainError:
    """Rebuild a DomainError from its wire form (used for idempotent replays)."""
    extra = {k: v for k, v in data.items() if k not in ("code", "message")}
    cls = ERROR_CLASSES.get(data.get("code", ""), DomainError)
    return cls(data.get("message"), **extra)
