"""Operations: liveness, readiness (the store answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from voicebook import __version__
from voicebook.models import ErrorBody, Health
from voicebook.scheduling.errors import StoreUnavailable
from voicebook.server.dependencies import Ctx, require_service_key

router = APIRouter(tags=["operations"])
guarded = APIRouter(tags=["operations"], dependencies=[Depends(require_service_key)])
"""Readiness and metrics need the service key when one is set (DESIGN §3); /healthz stays open
for load balancers and says nothing but "up"."""
READY_TIMEOUT_S = 3.0
"""The longest /readyz waits for the store (which answers sooner itself when it can say why)."""


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Any:
    return Health(status="ok", version=__version__)


@guarded.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": ErrorBody, "description": "The store or the bus is unreachable."}},
    summary="The store and the event bus are reachable",
)
async def readyz(ctx: Ctx) -> Any:
    try:
        await asyncio.wait_for(ctx.store.ping(), READY_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        message = f"The database did not answer within {READY_TIMEOUT_S:g} s."
        raise StoreUnavailable(message) from None
    await ctx.bus.ping()  # BusUnavailable (503) when Redis is away
    return Health(status="ready", version=__version__)


@guarded.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
