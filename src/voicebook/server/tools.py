"""Service-facing endpoints: the seven tools and the agent's reports (DESIGN §3–§4).

The body is read as JSON and handed to the service unvalidated, so that a malformed call is still
recorded as a failed tool call on the session's log; the OpenAPI schema still documents it.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voicebook.models import (
    TOOL_NAMES,
    TOOL_REQUESTS,
    TOOL_RESPONSES,
    AgentReport,
    AgentReportResponse,
    ErrorBody,
)
from voicebook.scheduling.errors import DomainError, InvalidInput
from voicebook.server.context import ServerContext, context
from voicebook.server.errors import domain_error_response
from voicebook.server.observability import session_id as session_var

Ctx = Annotated[ServerContext, Depends(context)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="The tool-call id: a retry with the same key returns the first answer.",
    ),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "Missing or wrong service key."),
        (403, "The caller must prove their number first (verification_required)."),
        (404, "Unknown session or appointment."),
        (
            409,
            "Conflict: slot taken, not identified, already cancelled, session ended, caller "
            "fixed by the line, no code sent.",
        ),
        (422, "Invalid input, time, phone, code, or a reused idempotency key."),
        (429, "Too many wrong codes, or too many codes sent to the number."),
        (503, "The store, or the code sender, is unavailable; retry."),
    )
}


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


router = APIRouter(tags=["service"], dependencies=[Depends(require_service_key)])


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    if isinstance(body.get("session_id"), str):
        session_var.set(body["session_id"])
    return body


def _json(model: Any, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def _tool_route(name: str) -> None:
    request_model, response_model = TOOL_REQUESTS[name], TOOL_RESPONSES[name]

    async def run(request: Request, ctx: Ctx, key: IdempotencyKey = None) -> Response:
        try:
            outcome = await ctx.service.run_tool(name, await json_body(request), key)
        except DomainError as error:
            ctx.metrics.tool_calls.labels(name, error.code).inc()
            return domain_error_response(error)
        ctx.metrics.tool_calls.labels(name, "ok").inc()
        return _json(outcome.response, outcome.replayed)

    run.__name__ = name
    router.add_api_route(
        f"/tools/{name}",
        run,
        methods=["POST"],
        summary=name.replace("_", " ").capitalize(),
        responses={200: {"model": response_model}, **ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"}
                    }
                },
            }
        },
    )


for _name in TOOL_NAMES:
    _tool_route(_name)


@router.post(
    "/agent/report",
    summary="Transcript lines, usage and recap from the agent; `hangup` ends the session",
    responses={200: {"model": AgentReportResponse}, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AgentReport"}}
            },
        }
    },
)
async def agent_report(request: Request, ctx: Ctx, key: IdempotencyKey = None) -> Response:
    answer = await ctx.service.report(await json_body(request), key)
    return _json(answer, False)


EXTRA_SCHEMAS = [*TOOL_REQUESTS.values(), AgentReport]
"""Request models documented by reference (the routes read raw JSON, see the module doc)."""
