"""`voicebook call --text`: talk to the real agent in the terminal (the LLM only, no audio).

Interactive when stdin is a terminal (a prompt; each tool call shows as it completes, with its
arguments, outcome and milliseconds); scripted with `--say` (repeatable) or with the lines of a
piped stdin. `--json` prints one document at the end: `{session_id, turns, tool_calls, usage,
summary}`. Without `--url` (or VOICEBOOK_URL / BACKEND_BASE_URL) the server runs inside this
process on the embedded store, so a fresh machine needs nothing but an LLM key.

Exit codes: 0 the call went through; 1 the LLM failed during the call (the caller was told);
2 usage or configuration (a missing LLM key, the agent extra not installed); 3 the server
cannot be reached.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from voicebook.cli import greeting_cache
from voicebook.cli.common import (
    EXIT_DOMAIN,
    EXIT_USAGE,
    AsJson,
    config_failed,
    console,
    fail,
    load_settings,
)
from voicebook.cli.common import require_agent_extra as _require_agent_extra
from voicebook.cli.remote import ApiKey, Url

if TYPE_CHECKING:
    from voicebook.agent.textmode import TextCall, Turn
    from voicebook.agent.tools import ToolCallRecord
    from voicebook.config import Settings

QUIT_WORDS = frozenset({"/quit", "/exit", "/bye"})


def call(
    text: Annotated[
        bool, typer.Option("--text", help="Text only: the agent with its LLM, no audio.")
    ] = False,
    say: Annotated[
        Optional[list[str]],  # noqa: UP045 - Typer reads the annotation at run time on 3.10
        typer.Option("--say", help="A caller line (repeatable); no prompt is shown."),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Talk to the real agent in the terminal: it identifies you, offers slots and books."""
    if not text:
        fail(
            "calls from the terminal are text-only: run `voicebook call --text` "
            "(voice calls come through LiveKit and `voicebook agent`)",
            EXIT_USAGE,
            code="text_only",
        )
    _require_agent_extra()
    lines = list(say or [])
    if not lines and not sys.stdin.isatty():
        lines = [line.strip() for line in sys.stdin if line.strip()]
        if not lines:
            fail(
                "stdin gave no lines to say: pipe the caller's lines, one a line, or pass --say",
                EXIT_USAGE,
                code="no_input",
            )
    interactive = not lines
    # The caller reads the greeting while the settings and livekit-agents load (seconds, on a
    # cold start): the one from the last run with this configuration, at once, if there is one.
    shown = None if as_json else greeting_cache.recall()
    if shown is not None:
        _show_greeting(shown)
    settings = load_settings()
    from voicebook.agent.providers import check_settings
    from voicebook.config import ConfigError

    try:
        check_settings(settings, voice=False)
    except ConfigError as exc:
        config_failed(exc)
    if not as_json:
        from voicebook.agent.greeting import greeting_for

        greeting = greeting_for(settings.agent_greeting, settings.business_model, known_line=False)
        if greeting != shown:  # no greeting remembered for this configuration (or a stale one)
            greeting_cache.remember(greeting)  # first: a caller may hang up as soon as it shows
            _show_greeting(greeting)
    from voicebook.cli.common import quiet_agent_logs, run

    quiet_agent_logs()

    failed = run(_talk(settings, lines, interactive, as_json, url, api_key))
    if failed:
        raise typer.Exit(EXIT_DOMAIN)


async def _talk(
    settings: Settings,
    lines: list[str],
    interactive: bool,
    as_json: bool,
    url: str | None,
    api_key: str | None,
) -> bool:
    """The call; True when the LLM failed during it."""
    import asyncio
    import json

    from voicebook.agent.textmode import TextCall
    from voicebook.cli.common import agent_server
    from voicebook.errors import VoicebookError

    quiet = as_json
    async with agent_server(settings, url, api_key) as (client, in_process):
        if in_process and not quiet:
            console.print(f"[dim]server in this process at {client.base_url}[/]", highlight=False)
        call = TextCall(settings, client, observer=None if quiet else _show_tool_call)
        try:
            await call.start()
        except VoicebookError as exc:
            from voicebook.cli.remote import fail_with

            fail_with(exc)
        if not quiet:  # the greeting is on the screen already
            console.print(f"[dim]session {call.session_id}[/]", highlight=False)
        try:
            await (_interactive(call) if interactive else _scripted(call, lines, quiet))
        except asyncio.CancelledError:  # Ctrl-C: hang up, so the call is still summarised
            if not quiet:
                console.print("\n[dim]hanging up…[/]", highlight=False)
        summary = await call.close()
        failed = any(turn.error for turn in call.turns)
        if as_json:
            typer.echo(json.dumps(call.document(summary), indent=2, default=str))
        elif summary is not None:
            from voicebook.cli.remote import print_summary

            print_summary(summary)
        return failed


async def _scripted(call: TextCall, lines: list[str], quiet: bool) -> None:
    for line in lines:
        if call.ending:
            break
        if not quiet:
            console.print(f"[bold]you>[/] {line}", highlight=False)
        turn = await call.say(line)
        if not quiet:
            _show_agent(turn)
        if turn.error:
            break


async def _interactive(call: TextCall) -> None:
    console.print("[dim]Type to talk; Ctrl-D or /quit hangs up.[/]", highlight=False)
    while not call.ending:
        try:
            line = (await _read_line("[bold]you>[/] ")).strip()
        except EOFError:
            console.print()
            break
        if not line:
            continue
        if line.lower() in QUIT_WORDS:
            break
        with console.status("[dim]…[/]", spinner="dots"):
            turn = await call.say(line)
        _show_agent(turn)
        if turn.error:
            break


async def _read_line(prompt: str) -> str:
    """One line from the terminal without blocking the event loop (the reports and the server
    keep running meanwhile). A daemon thread, not the loop's executor: at exit nobody waits
    for a line the caller will never type."""
    import asyncio
    import threading

    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            line = console.input(prompt)
        except Exception as exc:  # EOFError (Ctrl-D): handed to the caller
            loop.call_soon_threadsafe(_settle, answer, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, answer, line, None)

    threading.Thread(target=read, name="voicebook-input", daemon=True).start()
    return await answer


def _settle(answer: Any, line: str | None, error: Exception | None) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(line)


def _show_greeting(greeting: str) -> None:
    console.print(f"[bold cyan]agent>[/] {greeting}", highlight=False)


def _show_agent(turn: Turn) -> None:
    for text in turn.agent:
        if text:
            console.print(f"[bold cyan]agent>[/] {text}", highlight=False)
    if turn.error:
        from rich.markup import escape

        console.print(f"[red]{escape(turn.error)}[/]", highlight=False)


def _show_tool_call(record: ToolCallRecord) -> None:
    from rich.markup import escape

    arguments = ", ".join(f"{k}={v!r}" for k, v in record.arguments.items())
    outcome = "[green]ok[/]" if record.ok else f"[red]{escape(record.error_code or 'failed')}[/]"
    detail = "" if record.ok else f" {escape(record.output)}"
    console.print(
        f"  [magenta]⚙ {record.name}[/]({escape(arguments)}) → {outcome}{detail} "
        f"[dim]{record.ms:.0f} ms[/]",
        highlight=False,
    )
