"""Small helpers shared by the service tests."""

from __future__ import annotations

import itertools
from typing import Any

from voicebook.models import CallerRequest
from voicebook.scheduling.service import SchedulingService

_keys = itertools.count(1)


def key() -> str:
    """A fresh idempotency key, as the LLM's tool-call id would be."""
    return f"call_{next(_keys)}"


async def call(service: SchedulingService, tool: str, session_id: str, **args: Any) -> Any:
    """Run a tool with a fresh key and return its response model."""
    outcome = await service.run_tool(tool, {"session_id": session_id, **args}, key())
    return outcome.response


async def identified(
    service: SchedulingService, phone: str = "415 555 0123", name: str | None = None
) -> str:
    """A new session whose caller has identified with `phone`, started trusted (as a signed-in
    back-end starts it), so the caller may see and change all of their appointments; the
    claimed and verified levels have their own tests (test_trust.py)."""
    session = await service.start_session(CallerRequest(phone=phone, name=name))
    await call(service, "identify_user", session.id, phone=phone, name=name)
    return session.id
