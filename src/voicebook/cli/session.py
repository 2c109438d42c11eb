"""`voicebook session start | show | end | events`: sessions on a running server, via the SDK.

`events --follow` is a live timeline over the session's event WebSocket (`Client.stream_events`,
which resumes by itself after a dropped connection); it ends with the session (`session_closed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from voicebook.cli import remote
from voicebook.cli.common import console, errors
from voicebook.cli.remote import ApiKey, AsJson, Url

if TYPE_CHECKING:
    from voicebook.models import Event
    from voicebook.sdk import Client

app = typer.Typer(
    help="Sessions on a running server: start one, show it, follow its events, end it.",
    no_args_is_help=True,
)

SessionArg = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Argument(help="The session id (or --session).", show_default=False),
]
SessionOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--session",
        help="The session id, as an option (for ids that start with '-').",
        show_default=False,
    ),
]
EXIT_INTERRUPTED = 130
PAGE = 1000
"""Events per GET of the log (the server's largest page)."""


def _session_id(argument: str | None, option: str | None) -> str:
    if argument is None and option is None:
        raise typer.BadParameter("the session id is missing", param_hint="SESSION_ID / '--session'")
    if argument is not None and option is not None and argument != option:
        raise typer.BadParameter("give the session id once", param_hint="SESSION_ID / '--session'")
    return argument if argument is not None else option  # type: ignore[return-value]


@app.command()
def start(as_json: AsJson = False, url: Url = None, api_key: ApiKey = None) -> None:
    """Start a session, as the browser page does; print its id and event WebSocket."""
    with remote.connect(url, api_key) as vb:
        started = remote.call("starting a session…", vb.start_session, as_json=as_json)
    if as_json:
        remote.print_json(started)
        return
    console.print(f"session [bold]{started.session_id}[/] started", highlight=False)
    console.print(f"  state   {started.state}", highlight=False)
    console.print(f"  events  {started.ws_url}", highlight=False, soft_wrap=True)
    console.print(
        f"  next    voicebook tool identify_user --session {started.session_id} --phone …",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def show(
    session_id: SessionArg = None,
    session: SessionOpt = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Show a session: state, caller (phone masked), timestamps, and its summary once ended."""
    session_id = _session_id(session_id, session)
    with remote.connect(url, api_key) as vb:
        view = remote.call(
            "reading the session…", lambda: vb.get_session(session_id), as_json=as_json
        )
    if as_json:
        remote.print_json(view)
        return
    console.print(f"session [bold]{view.session_id}[/]", highlight=False)
    state = {"connected": "yellow", "active": "green", "ended": "dim"}.get(view.state, "")
    console.print(f"  state    [{state}]{view.state}[/]" if state else f"  state    {view.state}")
    if view.user is not None:
        who = view.user.phone_masked + (f" ({view.user.name})" if view.user.name else "")
        console.print(f"  caller   {who}", highlight=False)
    else:
        console.print("  caller   (not identified)", highlight=False)
    console.print(f"  started  {view.created_at.isoformat(timespec='seconds')}", highlight=False)
    console.print(f"  updated  {view.updated_at.isoformat(timespec='seconds')}", highlight=False)
    if view.ended_at is not None:
        reason = f" ({view.end_reason})" if view.end_reason else ""
        ended = view.ended_at.isoformat(timespec="seconds")
        console.print(f"  ended    {ended}{reason}", highlight=False)
    if view.summary is not None:
        remote.print_summary(view.summary)


@app.command()
def end(
    session_id: SessionArg = None,
    session: SessionOpt = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """End a session (the page's hang-up) and print its summary. Safe to repeat."""
    session_id = _session_id(session_id, session)
    with remote.connect(url, api_key) as vb:
        ended = remote.call(
            "ending the session…", lambda: vb.end_session(session_id), as_json=as_json
        )
    if as_json:
        remote.print_json(ended)
        return
    console.print(f"session [bold]{session_id}[/] ended", highlight=False)
    remote.print_summary(ended.summary)


@app.command()
def events(
    session_id: SessionArg = None,
    session: SessionOpt = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Follow live over the WebSocket until the session closes (Ctrl-C stops).",
        ),
    ] = False,
    after: Annotated[
        Optional[int],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option("--after", min=0, help="Only events after this event id.", show_default=False),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON only: the log as one array; with --follow one event per line.",
        ),
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """A session's event timeline: time, type, tool name/status/detail… (GET the log, or
    --follow it live)."""
    session_id = _session_id(session_id, session)
    with remote.connect(url, api_key) as vb:
        if follow:
            _follow(vb, session_id, after, as_json=as_json)
            return

        def read() -> list[Event]:
            log: list[Event] = []
            last = after
            while True:
                page = vb.session_events(session_id, after=last, limit=PAGE)
                log.extend(page)
                if len(page) < PAGE:
                    return log
                last = page[-1].id

        log = remote.call("reading the event log…", read, as_json=as_json)
    if as_json:
        remote.print_json(log)
        return
    for event in log:
        console.print(remote.event_line(event), soft_wrap=True)
    if not log:
        console.print("no events" + (f" after #{after}" if after else ""), highlight=False)


def _follow(vb: Client, session_id: str, after: int | None, *, as_json: bool) -> None:
    """Print each event as it arrives, until `session_closed` (or Ctrl-C)."""
    from voicebook.errors import VoicebookError

    stream = vb.stream_events(session_id, after)
    # The spinner redirects stdout above itself: only when both go to the terminal.
    live = not as_json and console.is_terminal
    try:
        with stream, remote.spinner(f"following session {session_id}…", enabled=live):
            for event in stream:
                if as_json:
                    typer.echo(event.model_dump_json())
                else:
                    console.print(remote.event_line(event), soft_wrap=True)
    except VoicebookError as exc:
        if stream.last_id and not as_json:
            errors.print(f"resume with --after {stream.last_id}", highlight=False)
        remote.fail_with(exc, as_json=as_json)
    except KeyboardInterrupt:
        errors.print(
            f"stopped; resume with --after {stream.last_id}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
