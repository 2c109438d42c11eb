"""Service-facing endpoints: the eight tools and the agent's reports (DESIGN §3–§4).

FastAPI parses and validates each request model (so OpenAPI documents the bodies as they are);
a tool call that does not validate is still recorded as a failed tool call on its session's log
(`ToolRoute`), because the page and the transcript of a call must show what the agent tried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from voicebook.models import (
    TOOL_NAMES,
    TOOL_REQUESTS,
    TOOL_RESPONSES,
    AgentReport,
    AgentReportResponse,
    ErrorBody,
    WireModel,
)
from voicebook.models import Request as ToolRequest
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.requests import validation_error
from voicebook.server.dependencies import Ctx, require_service_key
from voicebook.server.errors import VALIDATION_LOCATIONS, domain_error_response
from voicebook.server.observability import session_id as session_var

IDEMPOTENCY_HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
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


router = APIRouter(
    tags=["service"],
    dependencies=[Depends(require_service_key)],
    strict_content_type=False,  # a body without a content type is read as JSON, as it always was
)


def _json(model: WireModel, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


class ToolRoute(APIRoute):
    """A tool's route: a request that fails validation is recorded on its session's log as a
    failed call of this tool (and a retry of it gets the first answer), then refused."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        tool = self.name

        async def recording_refusals(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                errors = invalid.errors()
                refusal = validation_error(errors, skip=VALIDATION_LOCATIONS)
                bad_key = any(error.get("loc", ())[:1] == ("header",) for error in errors)
                key = None if bad_key else request.headers.get(IDEMPOTENCY_HEADER)
                ctx = request.app.state.ctx
                if isinstance(invalid.body, dict) and isinstance(
                    invalid.body.get("session_id"), str
                ):
                    session_var.set(invalid.body["session_id"])
                try:
                    outcome = await ctx.service.refuse_malformed(
                        tool, invalid.body, key, refusal, started
                    )
                except DomainError as error:
                    ctx.metrics.tool_calls.labels(tool, error.code).inc()
                    raise
                return _json(outcome.response, outcome.replayed)

        return recording_refusals


def _tool_route(name: str) -> None:
    request_model, response_model = TOOL_REQUESTS[name], TOOL_RESPONSES[name]

    async def run(body: ToolRequest, ctx: Ctx, key: IdempotencyKey = None) -> Response:
        session_var.set(body.session_id)
        try:
            outcome = await ctx.service.run_tool(name, body, key)
        except DomainError as error:
            ctx.metrics.tool_calls.labels(name, error.code).inc()
            return domain_error_response(error)
        ctx.metrics.tool_calls.labels(name, "ok").inc()
        return _json(outcome.response, outcome.replayed)

    run.__name__ = name
    run.__annotations__["body"] = request_model  # the annotations are strings (PEP 563)
    router.add_api_route(
        f"/tools/{name}",
        run,
        methods=["POST"],
        name=name,
        summary=name.replace("_", " ").capitalize(),
        responses={200: {"model": response_model}, **ERRORS},
        route_class_override=ToolRoute,
    )


for _name in TOOL_NAMES:
    _tool_route(_name)


@router.post(
    "/agent/report",
    summary="Transcript lines, usage and recap from the agent; `hangup` ends the session",
    responses={200: {"model": AgentReportResponse}, **ERRORS},
)
async def agent_report(body: AgentReport, ctx: Ctx, key: IdempotencyKey = None) -> Response:
    session_var.set(body.session_id)
    return _json(await ctx.service.report(body, key))
