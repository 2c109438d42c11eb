"""`voicebook serve`: the API server on uvicorn (the quick start's main job)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import logging.config
import os
import tempfile
from collections.abc import Iterator
from typing import Annotated

import typer

from voicebook.cli.common import (
    EXIT_USAGE,
    LogFormat,
    LogFormatOption,
    LogLevel,
    config_failed,
    console,
    fail,
    load_settings,
)

CODE_DELIVERY = {
    "console": "codes written to this log (development only)",
    "webhook": "codes sent by webhook",
    "twilio": "codes sent by Twilio Verify",
    "off": "verification off: a number said is believed",
}
"""How the banner describes VOICEBOOK_VERIFICATION."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    log_level: Annotated[LogLevel, typer.Option(help="How much the server logs.")] = LogLevel.info,
    log_format: LogFormatOption = LogFormat.auto,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback host without VOICEBOOK_API_KEY.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON only: log lines as --log-format json, the banner as log lines, errors "
            'as {"error": {...}}.',
        ),
    ] = False,
) -> None:
    """Run the API server: sessions, LiveKit tokens, the eight tools, live events, summaries."""
    import uvicorn

    from voicebook.config import ConfigError, redact_url
    from voicebook.scheduling.hours import format_hours
    from voicebook.server.observability import logging_config
    from voicebook.server.senders import missing_verification_settings
    from voicebook.server.websocket import MAX_INBOUND_BYTES

    settings = load_settings()
    if not _is_loopback(host) and settings.service_key() is None and not insecure:
        fail(
            f"refusing to listen on {host} without VOICEBOOK_API_KEY: anyone who can reach it "
            "could call the tools. Set VOICEBOOK_API_KEY, or pass --insecure if you must.",
            EXIT_USAGE,
            code="api_key_required",
        )
    if not _is_loopback(host) and settings.verification == "console":
        fail(
            f"refusing to listen on {host} with VOICEBOOK_VERIFICATION=console: the codes that "
            "prove a caller's number would only be written to this server's log. Set "
            "VOICEBOOK_VERIFICATION to webhook or twilio (or off, to believe any number said).",
            EXIT_USAGE,
            code="console_verification_public",
        )
    missing = missing_verification_settings(settings)
    if missing:
        fail(
            f"VOICEBOOK_VERIFICATION={settings.verification} needs {', '.join(missing)}: set "
            "them, or choose another VOICEBOOK_VERIFICATION.",
            EXIT_USAGE,
            code="verification_settings_missing",
        )
    try:
        database = redact_url(settings.resolved_database_url())
    except ConfigError as exc:  # the Supabase hint
        config_failed(exc)
    warnings = []
    if settings.verification == "off":
        warnings.append(
            "VOICEBOOK_VERIFICATION=off: a caller who says a number may see and change every "
            "appointment under it"
        )
    if workers > 1 and not settings.redis_url:
        warnings.append(
            "several workers without VOICEBOOK_REDIS_URL: a WebSocket only sees events handled "
            "by its own worker"
        )
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    bus = f"redis {redact_url(settings.redis_url)}" if settings.redis_url else "in-process"
    auth = "on (service key)" if settings.service_key() else "off (no VOICEBOOK_API_KEY)"
    hours = format_hours(settings.rules.weekly)
    console_access = (
        "(sign-in: the console password or the service key)"
        if settings.console_secrets()
        else "(open: no password or key set)"
    )
    banner = [
        f"voicebook serving on http://{shown}:{port}",
        f"  console    http://{shown}:{port}/  {console_access}",
        f"  API docs   http://{shown}:{port}/docs",
        f"  database   {database}",
        f"  events     {bus}",
        f"  hours      {hours} ({settings.timezone})",
        f"  auth       {auth}",
        f"  callers    {CODE_DELIVERY[settings.verification]}",
    ]
    chosen = LogFormat.json if as_json else log_format
    log_config = logging_config(log_level.value, settings.default_region, chosen.value)
    logging.config.dictConfig(log_config)
    if as_json:  # stdout stays empty: the banner is log lines like the rest
        log = logging.getLogger("voicebook.serve")
        for line in warnings:
            log.warning(line)
        log.info(" · ".join(line.strip() for line in banner))
    else:
        for line in warnings:
            console.print(f"[yellow]warning:[/] {line}", highlight=False)
        for line in banner:
            console.print(line, highlight=False, markup=False)
    with _metrics_dir(workers):
        uvicorn.run(
            "voicebook.cli.served_app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            log_level=log_level.value,
            log_config=log_config,  # applied again in every worker uvicorn spawns
            # X-Forwarded-For is believed only from VOICEBOOK_TRUSTED_PROXIES: from anyone else it
            # would let a client choose its address, and with it its rate-limit budget.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies,
            http="voicebook.server.protocol:DeadlineProtocol",  # header and body deadlines
            timeout_keep_alive=settings.keepalive_timeout_s,
            limit_concurrency=settings.max_connections,
            # Events are small JSON; compressing each frame per subscriber costs more than it saves.
            ws_per_message_deflate=False,
            ws_max_size=MAX_INBOUND_BYTES,  # the page sends nothing: never buffer 16 MiB of it
        )


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers write their metrics to a fresh directory, so /metrics counts them all
    (prometheus_client's multiprocess mode; removed when the server stops). One worker keeps
    them in memory: it has imported prometheus_client already, too late to switch."""
    from voicebook.server.observability import MULTIPROCESS_ENV

    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="voicebook-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)
