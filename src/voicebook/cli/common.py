"""What every command shares: consoles, settings loading, and turning failures into exit codes
(printed by `cli.report`, which says the codes and the `--json` error document).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import typer
from rich.console import Console

from voicebook.cli.report import EXIT_DOMAIN, EXIT_UNREACHABLE, EXIT_USAGE, fail

__all__ = ["EXIT_DOMAIN", "EXIT_UNREACHABLE", "EXIT_USAGE", "fail"]

T = TypeVar("T")
DatabaseUrl = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Option("--database-url", help="Overrides VOICEBOOK_DATABASE_URL.", show_default=False),
]


AsJson = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print only JSON on stdout (for scripts); errors too, as {"error": {...}}.',
    ),
]


class PartOfDay(str, Enum):
    """`--part-of-day`: a closed set, checked while the command line is read."""

    morning = "morning"
    afternoon = "afternoon"
    evening = "evening"


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(str, Enum):
    """`--log-format`: server/observability.py's LOG_FORMATS, which hold the rule."""

    auto = "auto"
    plain = "plain"
    json = "json"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="plain lines for a person, JSON lines for a collector; auto: plain on a terminal, "
        "JSON otherwise.",
    ),
]


def local_date(value: str | None, option: str = "--date") -> str | None:
    """`value` checked as a YYYY-MM-DD date (a typo is a usage error, before any request)."""
    if value is None:
        return None
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date in the form YYYY-MM-DD, e.g. 2027-03-02",
            param_hint=f"'{option}'",
        ) from None
    return value


console = Console()
errors = Console(stderr=True)


def config_failed(exc: Exception, beside: dict[str, Any] | None = None) -> NoReturn:
    """End the command on a ConfigError (exit 2): its text, and in the `--json` document each
    `file:line: field: problem` (or `VARIABLE: problem`) line as `problems`."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    problems = lines[1:] if len(lines) > 1 else lines  # one line: not valid TOML, or a variable
    fail(str(exc), EXIT_USAGE, code="invalid_configuration", beside=beside, problems=problems)


def load_settings(**overrides: Any) -> Any:
    """Settings with CLI overrides; configuration errors end the command with exit code 2."""
    from voicebook.config import ConfigError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        config_failed(exc)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, mapping the failures a user can meet to a message and an exit code."""
    import asyncio  # here, not at module level: `voicebook --help` stays fast
    import logging

    # The pool logs every failed reconnect attempt; the one error below says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    from voicebook.config import ConfigError
    from voicebook.scheduling.errors import DomainError, StoreUnavailable
    from voicebook.store.base import SchemaOutOfDate

    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        config_failed(exc)
    except SchemaOutOfDate as exc:
        fail(str(exc), EXIT_USAGE, code="schema_out_of_date")
    except StoreUnavailable as exc:
        fail(exc.message, EXIT_UNREACHABLE, code="database_unreachable")
    except DomainError as exc:
        from voicebook.cli.fixes import fix_for

        fail(fix_for(exc.code, exc.message), EXIT_DOMAIN, code=exc.code, **exc.extra)


@asynccontextmanager
async def opened_store(settings: Any, *, managing_schema: bool = False) -> AsyncIterator[Any]:
    """The configured store, opened for the duration of a command (inside `run`, so its
    configuration and connection errors get their exit codes)."""
    from voicebook.scheduling.errors import StoreUnavailable
    from voicebook.store import create_store

    store = create_store(settings, managing_schema=managing_schema)
    try:
        await store.open()
        yield store
    except StoreUnavailable as exc:
        reason = getattr(exc, "cause", None) or exc.__cause__
        where = store.display_url
        said = (
            f"Cannot reach the database at {where}: {reason}"
            if reason
            else f"Cannot reach the database at {where}."
        )
        raise StoreUnavailable(said) from None
    finally:
        await store.close()


def require_agent_extra() -> None:
    """End the command with the exact install line when the `agent` extra is missing."""
    from voicebook.agent import agent_extra_missing, install_hint

    missing = agent_extra_missing()
    if missing:
        fail(install_hint(missing), EXIT_USAGE, code="agent_extra_missing")


def quiet_agent_logs() -> None:
    """livekit-agents logs each failed model request with a traceback; the command already says
    what failed in one line, so its own logs are kept to the critical ones."""
    import logging

    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    logging.getLogger("voicebook.agent").setLevel(logging.CRITICAL)


@asynccontextmanager
async def agent_server(
    settings: Any, url: str | None, api_key: str | None, *, scratch: bool = False
) -> AsyncIterator[tuple[Any, bool]]:
    """The SDK client the agent commands talk through, and whether the server is in-process.

    The server is `url`, else VOICEBOOK_URL (environment, then `.env`), else BACKEND_BASE_URL;
    with none of them it runs inside this process, on the embedded store (`scratch`: on a
    throwaway SQLite file)."""
    import contextlib
    import tempfile
    from pathlib import Path

    from voicebook.agent.tools import agent_client
    from voicebook.sdk.dotenv import environment

    async with contextlib.AsyncExitStack() as stack:
        base_url = url or environment().get("VOICEBOOK_URL") or settings.backend_base_url
        in_process = base_url is None
        if in_process:
            from voicebook.server.embedded import serve_in_process

            if scratch:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="voicebook-"))
                database = f"sqlite:///{Path(folder) / 'scratch.sqlite3'}"
                settings = settings.model_copy(update={"database_url": database})
            base_url = await stack.enter_async_context(serve_in_process(settings))
        key = api_key or settings.service_key()
        yield await stack.enter_async_context(agent_client(base_url, key)), in_process
