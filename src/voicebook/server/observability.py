"""Request ids, structured (JSON) logs and Prometheus metrics.

Every log line carries the request id and, when known, a prefix of the session id, taken from
context variables set per request. The session id is the browser's only credential (DESIGN §3), so
no line holds one whole (`short_id`, also for ids in paths such as uvicorn's access lines), and
phone numbers are masked in every message and error by what they are (`mask_phones`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebook.scheduling.phone import mask_phones

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)


SHORT_ID_CHARS = 6
_SESSION_IN_TEXT = re.compile(
    r"""(/sessions?/|session_id=|['"]?session_id['"]?\s*[:=]\s*['"]?)([A-Za-z0-9_-]{16,64})"""
)
"""A session id where logs carry one: a `/session/<id>` path segment (access lines), a
`session_id=` query or keyword, a `"session_id": "…"` field."""


def short_id(value: str) -> str:
    """A credential as a log may show it: its first characters, enough to tell sessions apart
    and to grep, useless to anyone who would use it ("AbC123…")."""
    return value if len(value) <= SHORT_ID_CHARS else value[:SHORT_ID_CHARS] + "…"


def redact_log_text(text: str, region: str = "US", session: str | None = None) -> str:
    """`text` with phone numbers masked and session ids shortened (`session`, the one the
    request is about, wherever it appears; any other where it has the shape of one)."""
    text = mask_phones(text, region)
    if session and len(session) > SHORT_ID_CHARS and session in text:
        text = text.replace(session, short_id(session))
    return _SESSION_IN_TEXT.sub(lambda m: m.group(1) + short_id(m.group(2)), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and a prefix of the
    session id; phone numbers masked and session ids shortened in the message and the error."""

    def __init__(self, region: str = "US") -> None:
        super().__init__()
        self.region = region

    def format(self, record: logging.LogRecord) -> str:
        session = session_id.get()
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_log_text(record.getMessage(), self.region, session),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if session:
            entry["session_id"] = short_id(session)
        if record.exc_info:
            error = self.formatException(record.exc_info)
            entry["error"] = redact_log_text(error, self.region, session)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", region: str = "US") -> None:
    """JSON lines on stderr for every logger, uvicorn's (access lines included) too; `region`
    reads national phone numbers for masking (VOICEBOOK_DEFAULT_REGION)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(region))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "voicebook_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "voicebook_tool_calls_total",
            "Tool calls by tool and outcome (ok or the error code).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.websockets = Gauge(
            "voicebook_websockets_open", "Open session event WebSockets.", registry=self.registry
        )
        self.bus_lag = Histogram(
            "voicebook_bus_publish_lag_seconds",
            "Time from publishing an event to its arrival from the bus.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


class RequestContext:
    """ASGI middleware: a request id per HTTP request (X-Request-ID in and out) and its latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode()
        rid = incoming[:64] if incoming.isascii() and incoming else secrets.token_hex(8)
        request_id.set(rid)
        session_id.set(None)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )
