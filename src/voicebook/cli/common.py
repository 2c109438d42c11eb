"""What every command shares: consoles, settings loading, and turning failures into exit codes.

Exit codes: 0 ok, 1 a domain error (its sentence is printed), 2 a usage or configuration error,
3 the database or server cannot be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import typer
from rich.console import Console

T = TypeVar("T")
EXIT_DOMAIN, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
DatabaseUrl = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Option("--database-url", help="Overrides VOICEBOOK_DATABASE_URL.", show_default=False),
]

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Any:
    """Settings with CLI overrides; configuration errors end the command with exit code 2."""
    from voicebook.config import ConfigError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


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
        fail(str(exc), EXIT_USAGE)
    except SchemaOutOfDate as exc:
        fail(str(exc), EXIT_USAGE)
    except StoreUnavailable as exc:
        fail(exc.message, EXIT_UNREACHABLE)
    except DomainError as exc:
        fail(exc.message, EXIT_DOMAIN)


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
        from rich.markup import escape

        fail(escape(install_hint(missing)), EXIT_USAGE)


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
