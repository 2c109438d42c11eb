"""`voicebook serve`: the API server on uvicorn (the quick start's main job)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from typing import Annotated

import typer

from voicebook.cli.common import EXIT_USAGE, console, fail, load_settings

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
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback host without VOICEBOOK_API_KEY.")
    ] = False,
) -> None:
    """Run the API server: sessions, LiveKit tokens, the seven tools, live events, summaries."""
    import uvicorn

    from voicebook.config import redact_url
    from voicebook.scheduling.hours import format_hours
    from voicebook.server.observability import configure_logging
    from voicebook.server.senders import missing_verification_settings
    from voicebook.server.websocket import MAX_INBOUND_BYTES

    settings = load_settings()
    if not _is_loopback(host) and settings.service_key() is None and not insecure:
        fail(
            f"refusing to listen on {host} without VOICEBOOK_API_KEY: anyone who can reach it "
            "could call the tools. Set VOICEBOOK_API_KEY, or pass --insecure if you must.",
            EXIT_USAGE,
        )
    if not _is_loopback(host) and settings.verification == "console":
        fail(
            f"refusing to listen on {host} with VOICEBOOK_VERIFICATION=console: the codes that "
            "prove a caller's number would only be written to this server's log. Set "
            "VOICEBOOK_VERIFICATION to webhook or twilio (or off, to believe any number said).",
            EXIT_USAGE,
        )
    missing = missing_verification_settings(settings)
    if missing:
        fail(
            f"VOICEBOOK_VERIFICATION={settings.verification} needs {', '.join(missing)}.",
            EXIT_USAGE,
        )
    try:
        database = redact_url(settings.resolved_database_url())
    except Exception as exc:  # ConfigError: the Supabase hint
        fail(str(exc), EXIT_USAGE)
    if settings.verification == "off":
        console.print(
            "[yellow]warning:[/] VOICEBOOK_VERIFICATION=off: a caller who says a number may see "
            "and change every appointment under it"
        )
    if workers > 1 and not settings.redis_url:
        console.print(
            "[yellow]warning:[/] several workers without VOICEBOOK_REDIS_URL: a WebSocket only "
            "sees events handled by its own worker"
        )
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    console.print(f"voicebook serving on [bold]http://{shown}:{port}[/]", highlight=False)
    console.print(f"  API docs   http://{shown}:{port}/docs", highlight=False)
    console.print(f"  database   {database}", highlight=False)
    bus = f"redis {redact_url(settings.redis_url)}" if settings.redis_url else "in-process"
    auth = "on (service key)" if settings.service_key() else "off (no VOICEBOOK_API_KEY)"
    console.print(f"  events     {bus}", highlight=False)
    hours = format_hours(settings.rules.weekly)
    console.print(f"  hours      {hours} ({settings.timezone})", highlight=False)
    console.print(f"  auth       {auth}", highlight=False)
    console.print(f"  callers    {CODE_DELIVERY[settings.verification]}", highlight=False)
    configure_logging(log_level)
    with _metrics_dir(workers):
        uvicorn.run(
            "voicebook.server.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            log_level=log_level,
            log_config=None,
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
