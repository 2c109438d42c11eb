"""Every error is JSON `{"error": {"code", "message", ...}}` with a fitting status (DESIGN §3).

This module is the one place that envelope is built (`error_payload`); the middlewares that answer
before the app (body size, nesting, CORS) use it too. Domain errors carry their own code, sentence
and status; request-shape errors become `invalid_input` / `invalid_time` with the same sentences
the service uses; anything unexpected is logged and answered 500 `internal_error` without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.requests import validation_error

log = logging.getLogger(__name__)
_HTTP_CODES = {
    400: ("bad_request", "The request could not be read."),
    401: ("unauthorized", "A valid service key is required."),
    403: ("forbidden", "That is not allowed."),
    404: ("not_found", "There is nothing at that address."),
    405: ("method_not_allowed", "That method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    429: ("rate_limited", "Too many requests; please slow down."),
}


VALIDATION_LOCATIONS = ("body", "query", "path", "header")
"""FastAPI's location prefixes, left out of the sentence ("The limit is not valid: ...")."""


def error_payload(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error envelope of the wire contract."""
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_payload(code, message, **extra), status_code=status, headers=headers)


def domain_error_response(error: DomainError) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if getattr(error, "replayed", False) else None
    if error.status == 503:
        headers = {**(headers or {}), "Retry-After": "1"}
    return JSONResponse(error_payload(**error.to_dict()), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> JSONResponse:
        return domain_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return domain_error_response(validation_error(error.errors(), skip=VALIDATION_LOCATIONS))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
            return error_response(422, "invalid_input", "The request body is not valid JSON.")
        code, message = _HTTP_CODES.get(error.status_code, ("http_error", str(error.detail)))
        if isinstance(error.detail, str) and error.status_code not in (404, 405):
            message = error.detail
        return error_response(error.status_code, code, message, headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
