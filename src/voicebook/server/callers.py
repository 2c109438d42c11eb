"""Service-facing: a channel the business controls vouches for the caller (DESIGN §1 step 2).

On a SIP call the agent reads the caller's number from the SIP participant (`sip.phoneNumber`)
and attests it here with the service key; the session's caller is then *trusted*, and the LLM
cannot replace them (`identify_user` with another number is `caller_fixed`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from voicebook.models import CallerRequest, CallerResponse, ErrorBody
from voicebook.server.dependencies import Ctx, SessionId, require_service_key
from voicebook.server.tools import ERRORS

router = APIRouter(tags=["service"], dependencies=[Depends(require_service_key)])


@router.post(
    "/session/{session_id}/caller",
    response_model=CallerResponse,
    responses={**ERRORS, 422: {"model": ErrorBody, "description": "Invalid phone number."}},
    summary="Attest the caller's number (the SIP caller id): the session's caller is trusted",
)
async def attest_caller(session_id: SessionId, body: CallerRequest, ctx: Ctx) -> Any:
    return await ctx.service.attest_caller(session_id, body)
