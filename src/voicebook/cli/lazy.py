"""The root command group: command modules imported only when their command runs, and every
error of the run handed to `cli.report` (usage errors included).

`voicebook --version` imports no command module; `voicebook --help` lists the commands from
`COMMANDS` (name, module, short help) without importing them; `voicebook tool fetch_slots …`
imports `voicebook.cli.tool` alone.

Help is click's plain text (`plain_help`), not Typer's Rich panels: Rich's console, table and
panel modules cost a `voicebook --help` about as much as importing Typer itself (105 ms against
70, with Typer's import 60), for boxes around the same lines.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import typer

# typer vendors click and exports only BadParameter of its exceptions: the others from its copy.
from typer._click import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup

COMPLETION_FLAGS = ("install_completion", "show_completion")


@dataclass(frozen=True)
class Lazy:
    """A command of the root group: `module:app` is a Typer app (a group of commands), any
    other `module:attribute` a function (one command); `help` is its line in `voicebook
    --help` (a test checks it is the command's own)."""

    target: str
    help: str

    def load(self, name: str) -> Any:
        module, attribute = self.target.split(":")
        value = getattr(importlib.import_module(module), attribute)
        if isinstance(value, typer.Typer):  # a group, even of one command (`config check`)
            command = typer.main.get_group(value)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name=name)(value)
            command = typer.main.get_command(single)
        command.name = name
        plain_help(command)
        return command


def plain_flags(command: Any, ctx: Context) -> None:
    """Give `command`'s (and its sub-commands') --help and completion flags the default False.

    Typer defaults them to None, and a None it coerces through pydantic, so that printing a
    command's help imported pydantic (a tenth of a second) on the way; a flag that is False is
    taken as it is, and means the same (their callbacks act on a true value only)."""
    for each in _tree(command):
        flags = [p for p in each.params if p.name in COMPLETION_FLAGS]
        help_option = each.get_help_option(ctx)
        for flag in [*flags, *([help_option] if help_option is not None else [])]:
            if flag.default is None:
                flag.default = False


def plain_help(command: Any) -> None:
    """Give `command` (and its sub-commands) click's plain help instead of Typer's Rich panels
    (see the module's docstring)."""
    for each in _tree(command):
        each.rich_markup_mode = None
        if each.short_help is None and each.help:  # listed whole, not cut at the width
            each.short_help = " ".join(each.help.split("\n\n")[0].split())


def _tree(command: Any) -> Iterator[Any]:
    """`command` and every command below it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _tree(sub)


class LazyGroup(TyperGroup):
    """A Typer group whose commands are `Lazy` entries (`commands_to_load`)."""

    commands_to_load: ClassVar[dict[str, Lazy]] = {}
    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *self.commands_to_load]

    def get_command(self, ctx: Context, cmd_name: str) -> Any:
        lazy = self.commands_to_load.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the root's --help: the line, not the module
            # short_help too: click's plain help (TYPER_USE_RICH=0) cuts a derived one at 45
            return TyperCommand(name=cmd_name, help=lazy.help, short_help=lazy.help)
        command = lazy.load(cmd_name)
        plain_flags(command, ctx)
        return command

    def resolve_command(self, ctx: Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            from difflib import get_close_matches

            close = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if close and "Did you mean" not in exc.message:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {close[0]!r}?"
            raise

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        plain_flags(self, ctx)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        LazyGroup._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            LazyGroup._listing = False

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; usage errors and failures go through `cli.report` (see there)."""
        from voicebook.cli import report

        arguments = list(sys.argv[1:] if args is None else args)
        report.use_json(arguments)
        try:
            try:
                outcome = super().main(
                    args=arguments,
                    prog_name=prog_name,
                    complete_var=complete_var,
                    standalone_mode=False,
                    **extra,
                )
            except NoArgsIsHelpError as exc:  # a group named alone: its help is the answer
                typer.echo(exc.ctx.get_help())
                outcome = exc.exit_code
            except ClickException as exc:
                report.usage_failed(exc)
            except typer.Abort:
                report.fail("stopped.", report.EXIT_DOMAIN, code="aborted")
        except typer.Exit as exc:
            outcome = exc.exit_code
        code = outcome if isinstance(outcome, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code
