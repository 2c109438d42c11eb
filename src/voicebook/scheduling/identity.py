"""Who the caller is, and what they may see (DESIGN §4 identity levels). No I/O.

A session's caller is *trusted* when a channel the business controls vouches for the number (the
phone line's caller id, attested by the agent; a back-end that signed its user in), *verified*
when a one-time code sent to the number came back, and *claimed* when the number was only said.
A claimed caller may book, and see, move and cancel what this session booked for them; everything
else under that number stays hidden until they verify.

Codes are made here and stored hashed (a random salt, SHA-256) and compared in constant time; how
a code reaches the phone is a `Verifier` (console, webhook, Twilio Verify; see
`voicebook.server.senders`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from voicebook.models import CODE_DIGITS

IdentityLevel = Literal["claimed", "verified", "trusted"]
PROVED: frozenset[str] = frozenset({"verified", "trusted"})


class Verifier(Protocol):
    """Delivers one-time codes to a phone (and, for a hosted service, checks them)."""

    hosted: bool
    """True when the provider makes and checks the code itself (Twilio Verify): voicebook then
    stores no hash and asks `check`; otherwise voicebook makes the code and `send` delivers it."""

    async def send(self, phone: str, code: str | None, expires_at: datetime) -> None:
        """Deliver `code` to `phone` (E.164); `code` is None for a hosted verifier. Raises on
        failure (the caller turns any exception into `verification_unavailable`)."""
        ...

    async def check(self, phone: str, code: str) -> bool:
        """A hosted verifier's verdict on `code`; local verifiers are never asked."""
        ...


@dataclass(frozen=True)
class VerificationPolicy:
    """How codes behave: lifetime, tries per code, sends per number per hour."""

    enabled: bool = True
    """False only when an operator switched verification off: a claim then counts as proof."""
    code_minutes: float = 10
    max_attempts: int = 5
    sends_per_hour: int = 3

    @property
    def lifetime(self) -> timedelta:
        return timedelta(minutes=self.code_minutes)


def may_see_history(level: str | None, policy: VerificationPolicy) -> bool:
    """May this caller see and change what was booked under their number outside this session?"""
    if level is None:
        return False
    return level in PROVED or not policy.enabled


def new_code() -> str:
    """A uniformly random six-digit code (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(code: str) -> str:
    """`salt$digest`: what is stored instead of the code."""
    salt = secrets.token_hex(16)
    return f"{salt}${_digest(salt, code)}"


def code_matches(stored: str, code: str) -> bool:
    """Constant-time comparison of a given code with a stored `salt$digest`."""
    salt, _, digest = stored.partition("$")
    return hmac.compare_digest(_digest(salt, code), digest)


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def reveal_name(
    level: str | None, policy: VerificationPolicy, stored: str | None, said: str | None
) -> str | None:
    """The name a person may be shown for the session's caller: the stored one once the number is
    proved, otherwise only what the caller said in this session."""
    if may_see_history(level, policy):
        return said or stored
    return said
