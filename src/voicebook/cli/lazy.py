"""The root command group: command modules imported only when their command runs, and every
error of the run handed to `cli.report` (usage errors included).

`voicebook --version` imports no command module; `voicebook --help` lists the commands from
`COMMANDS` (name, module, short help) without importing them; `voicebook tool fetch_slots …`
imports `voicebook.cli.tool` alone. Typer's Rich help is loaded without Markdown and syntax
highlighting (`import_rich_help`), which voicebook's help never uses.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
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
        return command


def plain_flags(command: Any, ctx: Context) -> None:
    """Give `command`'s (and its sub-commands') --help and completion flags the default False.

    Typer defaults them to None, and a None it coerces through pydantic, so that printing a
    command's help imported pydantic (a tenth of a second) on the way; a flag that is False is
    taken as it is, and means the same (their callbacks act on a true value only)."""
    flags = [p for p in command.params if p.name in COMPLETION_FLAGS]
    help_option = command.get_help_option(ctx)
    for flag in [*flags, *([help_option] if help_option is not None else [])]:
        if flag.default is None:
            flag.default = False
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub, ctx)


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
            return TyperCommand(name=cmd_name, help=lazy.help)
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

    def _group_alone(self, arguments: list[str]) -> bool:
        """`voicebook tool`: a group named alone prints its help."""
        lazy = self.commands_to_load.get(arguments[0]) if len(arguments) == 1 else None
        return lazy is not None and lazy.target.endswith(":app")

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        plain_flags(self, ctx)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        import_rich_help()
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
        if "--help" in arguments or self._group_alone(arguments):  # help will be printed
            import_rich_help()
        try:
            try:
                outcome = super().main(
                    args=arguments,
                    prog_name=prog_name,
                    complete_var=complete_var,
                    standalone_mode=False,
                    **extra,
                )
            except NoArgsIsHelpError as exc:  # a group named alone: its help was the answer
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


def import_rich_help() -> None:
    """Import typer.rich_utils (the Rich help) without rich.markdown and rich.traceback.

    typer.rich_utils imports both at its top, and with them markdown-it and Pygments (about half
    the cost of printing help), for two features voicebook does not use: Markdown help text
    (`rich_markup_mode="markdown"`) and Rich tracebacks. They are stood in for, while it is
    imported, by classes that import the real one when first used, so either still works."""
    if "typer.rich_utils" in sys.modules:
        return
    planted = []
    for module, name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module not in sys.modules:
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, _deferred(module, name))
            sys.modules[module] = stand_in
            planted.append(module)
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        for module in planted:
            del sys.modules[module]


def _deferred(module: str, name: str) -> type:
    """A class standing for `module.name`: constructing it (or `from_exception`, Traceback's
    constructor) imports the real module and builds the real thing."""

    def real() -> Any:
        return getattr(importlib.import_module(module), name)

    class Deferred:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return real()(*args, **kwargs)

        @classmethod
        def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
            return real().from_exception(*args, **kwargs)

    Deferred.__name__ = Deferred.__qualname__ = name
    return Deferred
