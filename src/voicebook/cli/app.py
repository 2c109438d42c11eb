"""The Typer application behind `voicebook` and `python -m voicebook`."""

from __future__ import annotations

from typing import Annotated

import typer

from voicebook import __version__
from voicebook.cli import agent, appointments, config_check, db, init, serve, session, slots, tool
from voicebook.cli import call as call_cmd
from voicebook.cli import evaluate as eval_cmd
from voicebook.cli import token as token_cmd

app = typer.Typer(
    name="voicebook",
    help="The backend of an AI voice receptionist: scheduling, sessions, live events.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command(name="init")(init.init)
app.add_typer(config_check.app, name="config")
app.add_typer(db.app, name="db")
app.command()(slots.slots)
app.command()(serve.serve)
app.command()(token_cmd.token)
app.add_typer(session.app, name="session")
app.add_typer(tool.app, name="tool")
app.command(name="appointments")(appointments.appointments)
app.add_typer(agent.app, name="agent")
app.command(name="call")(call_cmd.call)
app.command(name="eval")(eval_cmd.evaluate)


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
