"""How a failed command reaches a person and a script: the one place errors are printed.

Every failure has a stable snake_case `code`, a sentence that names the fix, and an exit code
(0 ok, 1 a domain error, 2 usage or configuration, 3 the database or server cannot be reached).

- stderr always gets one line, `error: <sentence> (<code>)`, for the person at the terminal.
- With `--json` anywhere before a `--` on the command line, stdout gets one document, and
  nothing else: `{"error": {"code": …, "message": …, …details}}`. It covers usage errors too
  (an unknown option, a missing or bad value), which happen before any command runs, so the
  mode is read from the command line itself (`use_json`), once, by the root command.

Imports nothing heavy at module level: `voicebook --version` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import typer

EXIT_DOMAIN, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

_mode = {"json": False}


def use_json(args: Sequence[str]) -> None:
    """Errors of this run as JSON documents when `--json` is among `args` (before `--`)."""
    options = list(args)
    if "--" in options:
        options = options[: options.index("--")]
    _mode["json"] = "--json" in options


def json_mode() -> bool:
    return _mode["json"]


def document(code: str, message: str, beside: dict[str, Any] | None = None, **details: Any) -> str:
    """The `--json` error document (`beside`: fields of a command's own next to `error`)."""
    import json

    error = {"code": code, "message": message, **details}
    return json.dumps({**(beside or {}), "error": error}, indent=2, default=str)


def fail(
    message: str,
    exit_code: int,
    *,
    code: str,
    beside: dict[str, Any] | None = None,
    **details: Any,
) -> NoReturn:
    """End the command: `error: <message> (<code>)` on stderr, and with `--json` the document on
    stdout."""
    if json_mode():
        typer.echo(document(code, message, beside, **details))
    from rich.console import Console
    from rich.text import Text

    line = Text.assemble(("error:", "bold red"), " ", message, (f" ({code})", "dim"))
    Console(stderr=True, soft_wrap=True).print(line, highlight=False)
    raise typer.Exit(exit_code)


USAGE_CODES = {
    "NoSuchOption": "unknown_option",
    "MissingParameter": "missing_value",
    "BadParameter": "invalid_value",
    "BadOptionUsage": "invalid_option",
    "BadArgumentUsage": "invalid_argument",
}
"""click's usage exceptions by class name (the most specific first in the MRO wins); any other
UsageError (an unknown command, an extra argument) is `usage_error`."""


def usage_failed(error: Exception) -> NoReturn:
    """A usage error click raised while reading the command line: what was wrong, and where the
    command's options are listed."""
    code = next(
        (USAGE_CODES[c.__name__] for c in type(error).__mro__ if c.__name__ in USAGE_CODES),
        "usage_error",
    )
    ctx = getattr(error, "ctx", None)
    text = error.format_message() if hasattr(error, "format_message") else str(error)
    text = text.replace("Value error, ", "").rstrip()  # typer's validation prefix says nothing
    if not text.endswith((".", "?")):
        text += "."
    if code == "unknown_option" and ctx is not None:
        text += _dash_hint(ctx)
    where = f"{ctx.command_path} --help" if ctx is not None else "voicebook --help"
    fail(f"{text} See `{where}`.", getattr(error, "exit_code", EXIT_USAGE), code=code)


def _dash_hint(ctx: Any) -> str:
    """A session id starts with '-' once in 64, and then reads as an option: how to give it."""
    params = ctx.command.params
    if not any(param.param_type_name == "argument" for param in params):
        return ""
    if any("--session" in getattr(param, "opts", ()) for param in params):
        return " A value that starts with '-' goes after `--`, or as --session=VALUE."
    return " A value that starts with '-' goes after `--`."
