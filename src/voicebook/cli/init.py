"""`voicebook init`: write a commented starter `voicebook.toml` in the working directory.

At a terminal it asks a few questions (Rich prompts, each with its default, re-asked until the
answer is usable); with `--yes`, or when stdin is not a terminal (a script, CI), it takes the
defaults without asking. It never overwrites a file unless given `--force`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebook.cli.common import EXIT_USAGE, console, errors, fail

if TYPE_CHECKING:
    from voicebook.cli.starter import Starter


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York)") from None
    return value


def _hours(value: str) -> str:
    from voicebook.scheduling.hours import parse_hours

    parse_hours(value)
    return value


def _name(value: str) -> str:
    text = value.strip()
    if not 1 <= len(text) <= 200:
        raise ValueError("give a name of 1 to 200 characters")
    return text


def _ask(question: str, default: str, check: Callable[[str], str]) -> str:
    """Ask until `check` accepts the answer (it says what is wrong otherwise)."""
    from rich.markup import escape
    from rich.prompt import Prompt

    while True:
        answer = Prompt.ask(question, default=default, console=console)
        try:
            return check(answer)
        except ValueError as exc:
            errors.print(f"[red]{escape(str(exc))}[/]", highlight=False)


def _ask_minutes(default: int) -> int:
    from rich.prompt import IntPrompt

    while True:
        minutes = IntPrompt.ask("Its length in minutes", default=default, console=console)
        if 5 <= minutes <= 24 * 60:
            return minutes
        errors.print("[red]a length of 5 to 1440 minutes[/]", highlight=False)


def _questions() -> Starter:
    """The owner's answers, asked at the terminal."""
    from voicebook.cli import starter

    console.print("A few questions for the starter file (Enter takes the default).")
    name = _ask("Business name", starter.DEFAULT_NAME, _name)
    zone = _ask("Time zone (IANA)", starter.DEFAULT_ZONE, _zone)
    hours = _ask("Opening hours", starter.DEFAULT_HOURS, _hours)
    service = _ask("One service you offer", starter.DEFAULT_SERVICE, _name)
    minutes = _ask_minutes(starter.DEFAULT_MINUTES)
    staff = _ask("One staff member's name", starter.DEFAULT_STAFF, _name)
    return starter.Starter(name, zone, hours, service, minutes, staff)


def init(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Take the defaults without asking.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing voicebook.toml.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {path} as JSON (asks nothing, as --yes).")
    ] = False,
) -> None:
    """Write a commented starter voicebook.toml here: the business, one service, one staff
    member, and commented examples of buffers, prices, rooms, closed dates, policies and FAQ."""
    from voicebook.cli import starter
    from voicebook.config_files import DEFAULT_FILE

    path = Path(DEFAULT_FILE)
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it", EXIT_USAGE, code="file_exists")
    asking = not (yes or as_json) and sys.stdin.isatty()
    answers = _questions() if asking else starter.Starter()
    try:
        path.write_text(starter.render(answers), encoding="utf-8")
    except OSError as exc:
        fail(
            f"cannot write {path} ({exc.strerror}): run it in a directory you can write to",
            EXIT_USAGE,
            code="cannot_write",
        )
    if as_json:
        import json

        typer.echo(json.dumps({"path": str(path.resolve())}))
        return
    console.print(f"wrote [bold]{path}[/]; next: voicebook config check", highlight=False)
