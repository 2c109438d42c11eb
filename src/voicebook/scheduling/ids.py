"""Identifiers: random, URL-safe, prefixed so a person reading logs knows what each one names."""

from __future__ import annotations

import re
import secrets

PREFIXED_ID = re.compile(r"\b(?:usr|apt|vc)_[0-9a-f]{16}\b")
"""The ids below with a prefix (users, appointments, codes): their hex digits are never a phone
number, and the phone masker skips them instead of asking phonenumbers' matcher."""


def new_session_id() -> str:
    """128 random bits: the session id is the browser's only capability (DESIGN §3)."""
    return secrets.token_urlsafe(16)


def new_user_id() -> str:
    return "usr_" + secrets.token_hex(8)


def new_appointment_id() -> str:
    """Short enough for a model to copy reliably, 64 random bits so it cannot be guessed."""
    return "apt_" + secrets.token_hex(8)


def new_livekit_identity() -> str:
    """A LiveKit participant identity for a caller whose page did not bring one."""
    return "caller-" + secrets.token_hex(4)


def new_code_id() -> str:
    return "vc_" + secrets.token_hex(8)
