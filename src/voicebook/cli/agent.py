"""`voicebook agent start|dev`: the LiveKit worker that answers calls (see agent/worker.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from voicebook.cli.common import (
    LogFormat,
    LogFormatOption,
    LogLevel,
    config_failed,
    load_settings,
    require_agent_extra,
)

app = typer.Typer(
    help="The voice agent: a LiveKit worker dispatched by LIVEKIT_AGENT_NAME.",
)

LogLevelOption = Annotated[LogLevel, typer.Option(help="How much the worker logs.")]
Port = Annotated[
    int,
    typer.Option(min=0, max=65535, help="The worker's health-check HTTP port (0: a free one)."),
]

JsonLogs = Annotated[
    bool,
    typer.Option(
        "--json",
        help='JSON only: log lines as --log-format json, errors as {"error": {...}}.',
    ),
]


def _run(*, dev: bool, log_level: LogLevel, log_format: LogFormat, port: int) -> None:
    require_agent_extra()
    from voicebook.config import ConfigError

    settings = load_settings()
    try:
        from voicebook.agent.worker import create_agent_server

        server = create_agent_server(settings, port=port)
    except ConfigError as exc:
        config_failed(exc)
    # The server's log lines and rule (plain on a terminal, JSON otherwise), phones masked.
    from voicebook.server.observability import configure_logging

    configure_logging(log_level.value, settings.default_region, log_format.value)
    import asyncio

    from voicebook.agent.launcher import serve

    asyncio.run(serve(server, dev=dev))


def _chosen(log_format: LogFormat, as_json: bool) -> LogFormat:
    return LogFormat.json if as_json else log_format


@app.command()
def start(
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.auto,
    port: Port = 8081,
    as_json: JsonLogs = False,
) -> None:
    """Run the worker for production: JSON logs (plain lines on a terminal); SIGTERM drains
    running calls."""
    _run(dev=False, log_level=log_level, log_format=_chosen(log_format, as_json), port=port)


@app.command()
def dev(
    log_level: LogLevelOption = LogLevel.debug,
    log_format: LogFormatOption = LogFormat.plain,
    port: Port = 0,
    as_json: JsonLogs = False,
) -> None:
    """Run the worker for development: readable logs, no idle job processes kept warm."""
    _run(dev=True, log_level=log_level, log_format=_chosen(log_format, as_json), port=port)
