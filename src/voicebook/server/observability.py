"""Request ids, structured (JSON) logs and Prometheus metrics.

Every log line carries the request id and, when known, a prefix of the session id, taken from
context variables set per request. The session id is the browser's only credential (DESIGN §3), so
no line holds one whole (`short_id`, also for ids in paths such as uvicorn's access lines), and
phone numbers are masked in every message and error by what they are (`mask_phones`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import logging.config
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebook.scheduling.phone import mask_phones

log = logging.getLogger(__name__)
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


class PlainFormatter(JsonFormatter):
    """The same record as one line a person reads on a terminal: time, level, logger, message,
    then the request id and session prefix; redacted exactly as the JSON lines are."""

    def format(self, record: logging.LogRecord) -> str:
        entry = json.loads(super().format(record))
        context = " ".join(f"{k}={entry[k]}" for k in ("request_id", "session_id") if k in entry)
        line = f"{entry['time'][11:]} {record.levelname:<8} {entry['logger']}: {entry['message']}"
        line += f"  [{context}]" if context else ""
        return line + (f"\n{entry['error']}" if "error" in entry else "")


LOG_FORMATS = ("auto", "plain", "json")
"""`auto`: plain lines when stderr is a terminal (a person reads it), JSON lines otherwise (a
collector parses them); `plain` or `json` forces one."""


def logging_config(
    level: str = "info", region: str = "US", log_format: str = "auto"
) -> dict[str, Any]:
    """The logging setup as a `logging.config.dictConfig` document: log lines on stderr for
    every logger, uvicorn's (access lines included) too, as `log_format` says (`LOG_FORMATS`);
    `region` reads national phone numbers for masking (VOICEBOOK_DEFAULT_REGION).

    A document rather than calls, so that uvicorn applies it in each worker it spawns
    (`log_config`): `--workers N` and `--reload` log exactly as one process does. `auto` is
    decided here, once, for all of them (they share this process's stderr).
    """
    plain = log_format == "plain" or (log_format == "auto" and sys.stderr.isatty())
    formatter = PlainFormatter if plain else JsonFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"voicebook": {"()": f"{__name__}.{formatter.__name__}", "region": region}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "voicebook"},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str = "info", region: str = "US", log_format: str = "auto") -> None:
    """Apply `logging_config` to this process."""
    logging.config.dictConfig(logging_config(level, region, log_format))


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by `voicebook serve`) to a fresh directory where every worker writes its samples, so that
/metrics, whichever worker answers it, reports all of them (prometheus_client multiprocess mode)."""
SAMPLE_INTERVAL_S = 5.0
_PROCESS_SERIES = {
    "process_resident_memory_bytes": "Resident memory of a worker, in bytes.",
    "process_cpu_seconds": "CPU time a worker has used, in seconds.",
    "process_open_fds": "Open file descriptors of a worker.",
    "process_start_time_seconds": "When a worker started, in seconds since the epoch.",
}
_POOL_SERIES = {
    "pool_size": "Postgres connections the pools hold (open or being opened).",
    "pool_available": "Postgres connections idle in the pools.",
    "requests_waiting": "Requests waiting for a Postgres connection.",
}


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app).

    Gauges name how workers combine (`multiprocess_mode`): summed over live workers, or one
    series per worker (`pid` label) for the process's own figures.
    """

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
            "voicebook_websockets_open",
            "Open session event WebSockets.",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.bus_lag = Histogram(
            "voicebook_bus_publish_lag_seconds",
            "Time from publishing an event to its arrival from the bus.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.bus_published = Counter(
            "voicebook_bus_events_published_total",
            "Events handed to the event bus after their commit.",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "voicebook_rate_limited_total",
            "Browser requests refused 429 rate_limited, by the budget that ran out "
            "(address, session, start).",
            ["budget"],
            registry=self.registry,
        )
        self.rate_limit_storage_errors = Counter(
            "voicebook_rate_limit_storage_errors_total",
            "Times the shared rate-limit store (Redis) failed and a worker counted on its own.",
            registry=self.registry,
        )
        self.workers = Gauge(
            "voicebook_workers",
            "Server worker processes alive.",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.process = {
            name: Gauge(
                f"voicebook_{name}", doc, multiprocess_mode="liveall", registry=self.registry
            )
            for name, doc in _PROCESS_SERIES.items()
        }
        self.pool = {
            name: Gauge(
                f"voicebook_db_{name}", doc, multiprocess_mode="livesum", registry=self.registry
            )
            for name, doc in _POOL_SERIES.items()
        }

    def counting(self, publish: Callable[[Sequence[Any]], Awaitable[None]]) -> Callable[..., Any]:
        """`publish`, counting the events it hands on."""

        async def counted(events: Sequence[Any]) -> None:
            await publish(events)
            self.bus_published.inc(len(events))

        return counted

    def sample(self, pool_stats: Mapping[str, int] | None) -> None:
        """Set the figures that are read rather than counted: this process's and its pool's."""
        for family in ProcessCollector(registry=None).collect():
            gauge = self.process.get(family.name)
            if gauge is not None and family.samples:
                gauge.set(family.samples[0].value)
        for name, gauge in self.pool.items():
            gauge.set((pool_stats or {}).get(name, 0))

    async def sample_forever(self, pool_stats: Callable[[], Mapping[str, int] | None]) -> None:
        """Every worker samples itself every few seconds: in multiprocess mode the worker that
        answers /metrics cannot read the others' memory or pools."""
        self.workers.set(1)
        while True:
            try:
                self.sample(pool_stats())
            except Exception:  # a metric must never take the worker down
                log.exception("sampling metrics failed")
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def render(self) -> bytes:
        """The exposition text: every worker's samples in multiprocess mode, else this app's."""
        if not os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    @staticmethod
    def retire() -> None:
        """At a worker's exit: its live-only gauges stop counting (multiprocess mode)."""
        if os.environ.get(MULTIPROCESS_ENV):
            multiprocess.mark_process_dead(os.getpid())


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
