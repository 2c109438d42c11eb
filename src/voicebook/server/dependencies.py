"""What the routers depend on, in one place: the app's context, the service key, session ids.

Each is a FastAPI dependency, so a router declares what it needs and OpenAPI documents it (the
bearer scheme, the path parameter).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voicebook.scheduling.errors import DomainError, SessionNotFound
from voicebook.server.context import ServerContext
from voicebook.server.observability import session_id as session_var

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""What a session id can look like (ours are 128-bit url-safe base64); anything else is unknown."""


async def context(request: Request) -> ServerContext:
    """The app's context (settings, store, service, bus, metrics, limits)."""
    return request.app.state.ctx


Ctx = Annotated[ServerContext, Depends(context)]


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401
    default_message = (
        "A valid service key is required: send Authorization: Bearer <VOICEBOOK_API_KEY>."
    )


_bearer = HTTPBearer(auto_error=False, description="VOICEBOOK_API_KEY, when one is configured.")
ServiceCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_service_key(request: Request, credentials: ServiceCredentials) -> None:
    """Bearer auth with the service key, compared in constant time, whenever a key is set."""
    expected = request.app.state.ctx.settings.service_key()
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized()


async def known_session(session_id: str) -> str:
    """Refuse ids that cannot be ours before touching the database (and tag the log line)."""
    if not SESSION_ID.match(session_id):
        raise SessionNotFound()
    session_var.set(session_id)
    return session_id


SessionId = Annotated[str, Depends(known_session)]
