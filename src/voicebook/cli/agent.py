"""`voicebook agent start|dev`: the LiveKit worker that answers calls (see agent/worker.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from voicebook.cli.common import EXIT_USAGE, fail, load_settings, require_agent_extra

app = typer.Typer(help="The voice agent: a LiveKit worker dispatched by LIVEKIT_AGENT_NAME.")

LogLevel = Annotated[str, typer.Option(help="debug, info, warning or error.")]
Port = Annotated[
    int,
    typer.Option(min=0, max=65535, help="The worker's health-check HTTP port (0: a free one)."),
]


def _run(*, dev: bool, log_level: str, port: int) -> None:
    require_agent_extra()
    from voicebook.config import ConfigError

    settings = load_settings()
    try:
        from voicebook.agent.worker import create_agent_server

        server = create_agent_server(settings, port=port)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    _configure_logging(dev=dev, level=log_level, region=settings.default_region)
    from voicebook.agent.launcher import serve

    asyncio.run(serve(server, dev=dev))


def _configure_logging(*, dev: bool, level: str, region: str) -> None:
    """Readable lines in development; in production JSON lines with phone numbers masked,
    like the server's."""
    if dev:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return
    from voicebook.server.observability import configure_logging

    configure_logging(level, region)


@app.command()
def start(log_level: LogLevel = "info", port: Port = 8081) -> None:
    """Run the worker for production: JSON logs; SIGTERM drains running calls."""
    _run(dev=False, log_level=log_level, port=port)


@app.command()
def dev(log_level: LogLevel = "debug", port: Port = 0) -> None:
    """Run the worker for development: readable logs, no idle job processes kept warm."""
    _run(dev=True, log_level=log_level, port=port)
