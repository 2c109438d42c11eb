"""`create_app(settings)`: the FastAPI application, with no import-time globals.

The lifespan opens the store (migrating the embedded SQLite file; a Postgres that does not answer
yet is no reason not to start: requests get 503 and /readyz says why until it does), starts the
event bus and the housekeeping task (ending idle sessions, forgetting idempotency keys after 24 h,
deleting sessions past retention), and closes all of it on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from voicebook import __version__
from voicebook.config import Settings, load_settings
from voicebook.events import create_bus
from voicebook.models import VERSION_HEADER
from voicebook.scheduling.errors import StoreUnavailable
from voicebook.scheduling.service import SchedulingService
from voicebook.server import browser, business, callers, console, ops, tools, websocket
from voicebook.server.context import ServerContext
from voicebook.server.errors import install_error_handlers
from voicebook.server.limits import BodySizeLimit, BrowserLimits, JsonCORSMiddleware
from voicebook.server.nesting import NestingLimit
from voicebook.server.observability import Metrics, RequestContext, short_id
from voicebook.server.senders import create_verifier
from voicebook.server.version import ServerVersion
from voicebook.store import create_store, exclusive
from voicebook.store.retention import prune_ended, retention_cutoff

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL = timedelta(hours=24)


RETENTION_BATCHES_PER_ROUND = 5
"""A round prunes at most this many batches; a larger backlog is worked off over later rounds."""
HOUSEKEEPING_LOCK = "voicebook.housekeeping"
"""The name under which one process at a time works a housekeeping round (`exclusive`)."""


@dataclass
class HousekeepingRound:
    """What one round did."""

    ended: int = 0
    pruned_sessions: int = 0


async def housekeeping_round(ctx: ServerContext) -> HousekeepingRound:
    """One round: end sessions idle for VOICEBOOK_SESSION_IDLE_MINUTES, forget idempotency keys
    after 24 h, delete sessions ended more than VOICEBOOK_RETENTION_DAYS ago (DESIGN §5).

    A session that cannot be ended is logged and left for the next round; it holds up neither
    the others nor the pruning. The store going away ends the round.
    """
    idle = timedelta(minutes=ctx.settings.session_idle_minutes)
    done = HousekeepingRound()
    now = ctx.service.clock()
    async with ctx.store.transaction(write=False) as tx:
        stale = await tx.idle_sessions(now - idle)
    for session_id in stale:
        try:
            await ctx.service.end_session(session_id, reason="idle")
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("idle session %s could not be ended", short_id(session_id))
        else:
            done.ended += 1
    async with ctx.store.transaction() as tx:
        await tx.prune_idempotency(now - IDEMPOTENCY_TTL)
    done.pruned_sessions = await prune_ended(
        ctx.store,
        retention_cutoff(now, ctx.settings.retention_days),
        max_batches=RETENTION_BATCHES_PER_ROUND,
    )
    if done.pruned_sessions:
        log.info("retention: deleted %d ended sessions", done.pruned_sessions)
    return done


async def housekeeping(ctx: ServerContext) -> None:
    """`housekeeping_round` every few seconds (a quarter of the idle time, 0.5–5 s).

    One process at a time works a round, among all that share the database (several workers or
    hosts on one Postgres): the round runs only while `exclusive` grants it; the others skip it.
    Nothing ends the loop but its cancellation: a round that fails is logged, and the next one
    runs as planned (a store that is away is logged once, and once more when it is back).
    """
    idle = timedelta(minutes=ctx.settings.session_idle_minutes)
    interval = min(5.0, max(0.5, idle.total_seconds() / 4))
    store_away = False
    while True:
        await asyncio.sleep(interval)
        try:
            async with exclusive(ctx.store, HOUSEKEEPING_LOCK) as ours:
                if ours:
                    await housekeeping_round(ctx)
        except StoreUnavailable as error:
            if not store_away:
                log.warning(
                    "housekeeping waits for the database (%s)", error.__cause__ or error.message
                )
            store_away = True
            continue
        except Exception:
            log.exception("housekeeping round failed; the next one runs in %g s", interval)
            continue
        if store_away:
            log.info("housekeeping resumed: the database answers again")
            store_away = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()
    store = create_store(settings)
    bus = create_bus(settings, on_lag=metrics.bus_lag.observe)
    service = SchedulingService(
        store,
        settings.rules,
        default_region=settings.default_region,
        business=settings.business_model,
        prices=settings.prices,
        publish=metrics.counting(bus.publish),
        verifier=create_verifier(settings),
        policy=settings.verification_policy,
    )
    ctx = ServerContext(
        settings=settings,
        store=store,
        service=service,
        bus=bus,
        metrics=metrics,
        limits=BrowserLimits(settings, metrics),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await bus.start()
        task = asyncio.create_task(housekeeping(ctx), name="voicebook-housekeeping")
        sampler = asyncio.create_task(
            metrics.sample_forever(store.pool_stats), name="voicebook-metrics"
        )
        try:
            yield
        finally:
            for background in (task, sampler):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            metrics.retire()
            await bus.close()
            await store.close()

    app = FastAPI(
        title="voicebook",
        version=__version__,
        description="Backend of an AI voice receptionist: sessions, LiveKit tokens, the eight "
        "scheduling tools, live session events and summaries.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(browser.router)
    app.include_router(websocket.router)
    app.include_router(tools.router)
    app.include_router(callers.router)
    app.include_router(business.router)
    app.include_router(ops.router)
    app.include_router(ops.guarded)
    console.install(app)
    # Added innermost first: CORS is outermost but for the version header (on every answer,
    # preflights too), so even a 413 or a 500 is readable by the page.
    app.add_middleware(NestingLimit)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, metrics=metrics)
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=[
            "Idempotent-Replayed",
            "X-Request-ID",
            "Retry-After",
            "Link",
            VERSION_HEADER,
        ],
        max_age=600,
    )
    app.add_middleware(ServerVersion)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with every error documented as the contract's ErrorBody."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    # Every error answer is the ErrorBody shape (FastAPI would document its own 422), and every
    # body-taking operation can answer 413.
    error_body = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    }
    for item in schema["paths"].values():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "Invalid input.", **error_body}
            if method == "post":
                responses.setdefault("413", {"description": "Body too large.", **error_body})
            if operation.get("security"):
                responses.setdefault("401", {"description": "Missing or wrong key.", **error_body})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (and `voicebook serve --workers N`)."""
    return create_app()
