"""LiveKit access tokens for the browser (DESIGN §3, `POST /livekit/token`; `voicebook token`).

Minting is offline: the token is a JWT signed with LIVEKIT_API_SECRET. It lets one participant join
the room named after the session, and its room configuration dispatches the agent
LIVEKIT_AGENT_NAME with `{"session_id": ...}` as the job metadata, so the agent knows which
session it serves. The secret is only ever handed to the signer: never logged, echoed or returned.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from livekit import api

from voicebook.scheduling.errors import DomainError, InvalidInput
from voicebook.scheduling.ids import new_livekit_identity

__all__ = [
    "LiveKitNotConfigured",
    "LiveKitToken",
    "mint_token",
    "missing_livekit_settings",
    "require_livekit_settings",
    "session_token_ttl",
]

_REQUIRED = (
    ("livekit_url", "LIVEKIT_URL"),
    ("livekit_api_key", "LIVEKIT_API_KEY"),
    ("livekit_api_secret", "LIVEKIT_API_SECRET"),
)


class LiveKitNotConfigured(DomainError):
    code = "livekit_not_configured"
    status = 503
    default_message = (
        "LiveKit is not configured: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
    )

    @classmethod
    def naming(cls, missing: list[str]) -> LiveKitNotConfigured:
        """The error naming exactly the variables that are missing."""
        *rest, last = missing
        names = f"{', '.join(rest)} and {last}" if rest else last
        return cls(f"LiveKit is not configured: set {names}.", missing=list(missing))


@dataclass(frozen=True)
class LiveKitToken:
    """What the browser needs to join: the JWT, the server URL, the room and its identity."""

    token: str
    url: str
    room: str
    identity: str

    def __repr__(self) -> str:  # the JWT is a credential; keep it out of logs and tracebacks
        return (
            f"LiveKitToken(token='…', url={self.url!r}, room={self.room!r}, "
            f"identity={self.identity!r})"
        )


def _value(settings: Any, field: str) -> str:
    value = getattr(settings, field, None)
    if value is None:
        return ""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value).strip()


def missing_livekit_settings(settings: Any) -> list[str]:
    """The LiveKit variables (by their environment names) that are unset or blank."""
    return [name for field, name in _REQUIRED if not _value(settings, field)]


def require_livekit_settings(settings: Any) -> None:
    """Raise LiveKitNotConfigured, naming the missing variables, unless tokens can be minted."""
    missing = missing_livekit_settings(settings)
    if missing:
        raise LiveKitNotConfigured.naming(missing)


def new_identity() -> str:
    """A participant identity for a caller who did not bring one."""
    return new_livekit_identity()


def session_token_ttl(settings: Any) -> timedelta:
    """The lifetime of a session's token: VOICEBOOK_TOKEN_TTL_MINUTES, but never longer than
    VOICEBOOK_SESSION_IDLE_MINUTES, after which an idle session is ended."""
    return timedelta(minutes=min(settings.token_ttl_minutes, settings.session_idle_minutes))


def mint_token(
    settings: Any,
    session_id: str,
    *,
    identity: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> LiveKitToken:
    """A token joining room `session_id` that dispatches the configured agent to it.

    Raises LiveKitNotConfigured (naming the missing variables) before anything is signed, and
    InvalidInput for a blank session id. `now` fixes the token's start time (nbf); without it the
    current time is used. The token lives `ttl`, by default `settings.token_ttl_minutes` minutes
    (the server passes `session_token_ttl(settings)`).
    """
    require_livekit_settings(settings)
    room = (session_id or "").strip()
    if not room:
        raise InvalidInput("A session id is needed to join a room.")
    who = (identity or "").strip() or new_identity()
    if ttl is None:
        ttl = timedelta(minutes=settings.token_ttl_minutes)

    access = (
        api.AccessToken(_value(settings, "livekit_api_key"), _value(settings, "livekit_api_secret"))
        .with_identity(who)
        .with_ttl(ttl)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_room_config(
            api.RoomConfiguration(
                agents=[
                    api.RoomAgentDispatch(
                        agent_name=settings.livekit_agent_name,
                        metadata=json.dumps({"session_id": room}),
                    )
                ]
            )
        )
    )
    if name and name.strip():
        access = access.with_name(name.strip())

    token = access.to_jwt() if now is None else _jwt_at(access, now)
    return LiveKitToken(token=token, url=_value(settings, "livekit_url"), room=room, identity=who)


def _jwt_at(access: api.AccessToken, now: datetime) -> str:
    """`AccessToken.to_jwt()` with nbf/exp counted from `now` instead of the wall clock.

    The claims are the library's own (`Claims.asdict()`), so the token has the same shape.
    """
    import jwt  # PyJWT, a dependency of livekit-api

    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    start = now.astimezone(timezone.utc)
    claims = access.claims.asdict()
    claims.update(
        {
            "sub": access.identity,
            "iss": access.api_key,
            "nbf": calendar.timegm(start.utctimetuple()),
            "exp": calendar.timegm((start + access.ttl).utctimetuple()),
        }
    )
    return jwt.encode(claims, access.api_secret, algorithm="HS256")
