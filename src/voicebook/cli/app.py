"""The Typer application behind `voicebook` and `python -m voicebook`.

Commands are listed here with the line `voicebook --help` shows, and imported only when run
(`cli.lazy`): `--version` and `--help` pay for none of them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from voicebook import __version__
from voicebook.cli.lazy import Lazy, LazyGroup

LazyGroup.commands_to_load = {
    "init": Lazy(
        "voicebook.cli.init:init",
        "Write a commented starter voicebook.toml here: the business, one service, one staff "
        "member, and commented examples of buffers, prices, rooms, closed dates, policies and "
        "FAQ.",
    ),
    "config": Lazy(
        "voicebook.cli.config_check:app",
        "The configuration (environment, .env, voicebook.toml): check it.",
    ),
    "db": Lazy(
        "voicebook.cli.db:app",
        "Database schema: apply migrations, show their state, print the schema; retention.",
    ),
    "operators": Lazy(
        "voicebook.cli.operators:app",
        "Console accounts, one per person: add one, set its password, remove it, list them "
        "(each change from the console names its account).",
    ),
    "slots": Lazy("voicebook.cli.slots:slots", "List free appointment slots."),
    "serve": Lazy(
        "voicebook.cli.serve:serve",
        "Run the API server: sessions, LiveKit tokens, the eight tools, live events, summaries.",
    ),
    "token": Lazy(
        "voicebook.cli.token:token",
        "Mint a LiveKit token that joins a session's room and dispatches the agent.",
    ),
    "session": Lazy(
        "voicebook.cli.session:app",
        "Sessions on a running server: start one, vouch for its caller, show it, follow its "
        "events, end it.",
    ),
    "tool": Lazy(
        "voicebook.cli.tool:app",
        "Call one of the eight tools on a session, as the agent does (e.g. `voicebook tool "
        "book_appointment --session S --slot X`).",
    ),
    "appointments": Lazy(
        "voicebook.cli.appointments:appointments",
        "The business's appointments of one day, every status, a table per staff member "
        "(service key; phones masked).",
    ),
    "agent": Lazy(
        "voicebook.cli.agent:app",
        "The voice agent: a LiveKit worker dispatched by LIVEKIT_AGENT_NAME.",
    ),
    "call": Lazy(
        "voicebook.cli.call:call",
        "Talk to the real agent in the terminal: it identifies you, offers slots and books.",
    ),
    "eval": Lazy(
        "voicebook.cli.evaluate:evaluate",
        "Run scripted conversations and check the tool calls the agent makes; exit 1 on a failure.",
    ),
}

app = typer.Typer(
    name="voicebook",
    cls=LazyGroup,
    help="The backend of an AI voice receptionist: scheduling, sessions, live events.",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help (cli/lazy.py says why)
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voicebook {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """voicebook: run `voicebook COMMAND --help` for a command's options."""


def main() -> None:
    app()
