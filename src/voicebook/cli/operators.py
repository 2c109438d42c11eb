"""`voicebook operators add | password | remove | list`: the console's named accounts, in the
database the server uses (server/console/accounts.py says what an account is).

The password is asked twice on a terminal (never echoed, never an argument: arguments end up in
shell history and `ps`), or read from stdin's first line with `--password-stdin`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from voicebook.cli.common import (
    EXIT_USAGE,
    AsJson,
    DatabaseUrl,
    console,
    fail,
    load_settings,
    opened_store,
    run,
)

if TYPE_CHECKING:
    from voicebook.config import Settings
    from voicebook.store.base import OperatorRecord, Store

app = typer.Typer(
    help="Console accounts, one per person: add one, set its password, remove it, list them "
    "(each change from the console names its account).",
)

Name = Annotated[str, typer.Argument(help="The account's sign-in name, e.g. maria.")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from stdin's first line (for scripts) instead of asking twice.",
    ),
]


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail(
            "there is no terminal to ask the password on: pipe it in and pass --password-stdin",
            EXIT_USAGE,
            code="password_needed",
        )
    answer: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return answer


def _login_note(settings: Settings) -> str | None:
    """What an operator should know about signing in with accounts on this configuration."""
    if not settings.console_secrets():
        return (
            "the console has no sign-in yet: accounts sign in once VOICEBOOK_API_KEY or "
            "VOICEBOOK_CONSOLE_PASSWORD is set for the server"
        )
    if settings.console_password_value() is not None:
        return "with accounts, VOICEBOOK_CONSOLE_PASSWORD no longer signs in (the service key does)"
    return None


@app.command()
def add(
    name: Name,
    password_stdin: PasswordStdin = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Add an account; its changes from the console are recorded under its name."""
    from voicebook.scheduling.service import utc_now
    from voicebook.server.console.accounts import account_name, add_account, check_new_password

    settings = load_settings(database_url=database_url)
    chosen = _checked(account_name, name)
    password = _checked(check_new_password, _new_password(password_stdin))
    _write(settings, lambda store: add_account(store, chosen, password, utc_now()))
    note = _login_note(settings)
    if as_json:
        typer.echo(json.dumps({"added": chosen, "note": note}, indent=2))
        return
    console.print(f"added account [bold]{chosen}[/]: it signs in to the console with its name")
    if note:
        console.print(f"note: {note}", highlight=False)


@app.command()
def password(
    name: Name,
    password_stdin: PasswordStdin = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Set an account's password; its open sign-ins end."""
    from voicebook.scheduling.service import utc_now
    from voicebook.server.console.accounts import account_name, check_new_password, set_password

    settings = load_settings(database_url=database_url)
    chosen = _checked(account_name, name)
    new = _checked(check_new_password, _new_password(password_stdin))
    _write(settings, lambda store: set_password(store, chosen, new, utc_now()))
    if as_json:
        typer.echo(json.dumps({"changed": chosen}, indent=2))
        return
    console.print(f"new password for [bold]{chosen}[/]; its open sign-ins have ended")


@app.command()
def remove(name: Name, as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Remove an account; its sign-ins end, and what it changed still names it."""
    from voicebook.server.console.accounts import account_name, remove_account

    settings = load_settings(database_url=database_url)
    chosen = _checked(account_name, name)
    _write(settings, lambda store: remove_account(store, chosen))
    if as_json:
        typer.echo(json.dumps({"removed": chosen}, indent=2))
        return
    console.print(f"removed account [bold]{chosen}[/]")


@app.command("list")
def list_accounts(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """List the accounts (names and dates; never a password or its hash)."""
    from voicebook.server.console.accounts import accounts

    settings = load_settings(database_url=database_url)

    async def read() -> list[OperatorRecord]:
        async with opened_store(settings) as store:
            return await accounts(store)

    found = run(read())
    if as_json:
        listed = [
            {
                "name": a.name,
                "created_at": a.created_at.isoformat(),
                "updated_at": a.updated_at.isoformat(),
            }
            for a in found
        ]
        typer.echo(json.dumps({"accounts": listed}, indent=2))
        return
    if not found:
        console.print("no accounts yet: `voicebook operators add NAME` adds one")
        return
    from rich.table import Table

    table = Table()
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("added", no_wrap=True)
    table.add_column("password set", no_wrap=True)
    for a in found:
        added, changed = (f"{at:%Y-%m-%d %H:%M} UTC" for at in (a.created_at, a.updated_at))
        table.add_row(a.name, added, changed)
    console.print(table)


def _write(settings: Settings, change: Callable[[Store], Awaitable[object]]) -> None:
    """`change` against the configured database, its failures as the command's exit codes."""

    async def write() -> None:
        async with opened_store(settings) as store:
            await change(store)

    run(write())


def _checked(check: Callable[[str], str], value: str) -> str:
    """`check(value)`, a DomainError ending the command as usage (exit 2) with its sentence."""
    from voicebook.scheduling.errors import DomainError

    try:
        return check(value)
    except DomainError as exc:
        fail(exc.message, EXIT_USAGE, code=exc.code)
