"""`voicebook session start | attest | show | end | events`: sessions on a running server (SDK).

`start --phone` is what a signed-in back-end does (service key): the session starts *trusted*
for that caller. `attest` vouches for the caller of a running session, as the agent does with a
SIP call's caller id.

`events --follow` is a live timeline over the session's event WebSocket (`Client.stream_events`,
which resumes by itself after a dropped connection); it ends with the session (`session_closed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from voicebook.cli import remote
from voicebook.cli.common import AsJson, console, errors
from voicebook.cli.remote import ApiKey, Url

if TYPE_CHECKING:
    from voicebook.models import Event, User
    from voicebook.sdk import Client

app = typer.Typer(
    help="Sessions on a running server: start one, vouch for its caller, show it, follow its "
    "events, end it.",
    no_args_is_help=True,
)

SessionArg = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Argument(
        help="The session id (or --session); one that starts with '-' goes after `--`.",
        show_default=False,
    ),
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
"""Events per GET of the log (the server's largest page)."""


def _session_id(argument: str | None, option: str | None) -> str:
    if argument is None and option is None:
        raise typer.BadParameter(
            "the session id is missing: give it as SESSION_ID or --session ID",
            param_hint="SESSION_ID / '--session'",
        )
    if argument is not None and option is not None and argument != option:
        raise typer.BadParameter(
            "give the session id once, as SESSION_ID or as --session ID",
            param_hint="SESSION_ID / '--session'",
        )
    return argument if argument is not None else option  # type: ignore[return-value]


Phone = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--phone",
        help="The caller's phone, vouched for by you (needs the service key): the session is "
        "trusted.",
        show_default=False,
    ),
]
Name = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--name", help="The caller's name.", show_default=False),
]


def _print_caller(user: User | None, level: str | None) -> None:
    if user is None:
        console.print("  caller  (not identified)", highlight=False)
        return
    who = user.phone_masked + (f" ({user.name})" if user.name else "")
    console.print(f"  caller  {who} · {level or 'claimed'}", highlight=False)


@app.command()
def start(
    phone: Phone = None,
    name: Name = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Start a session, as the browser page does (or, with --phone, as a signed-in back-end
    does: trusted for that caller); print its id and event WebSocket."""
    if name is not None and phone is None:
        raise typer.BadParameter("--name needs --phone", param_hint="'--name'")
    with remote.connect(url, api_key) as vb:
        started = remote.call(
            "starting a session…",
            lambda: vb.start_session(phone=phone, name=name),
            as_json=as_json,
        )
    if as_json:
        remote.print_json(started)
        return
    console.print(f"session [bold]{started.session_id}[/] started", highlight=False)
    console.print(f"  state   {started.state}", highlight=False)
    if started.user is not None:
        _print_caller(started.user, started.identity_level)
    console.print(f"  events  {started.ws_url}", highlight=False, soft_wrap=True)
    step = "" if started.user is not None else " --phone …"
    console.print(
        f"  next    voicebook tool identify_user --session {started.session_id}{step}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def attest(
    phone: Annotated[
        str,
        typer.Option(
            "--phone",
            help="The caller's number as the line gave it (e.g. a SIP caller id).",
            show_default=False,
        ),
    ],
    session_id: SessionArg = None,
    session: SessionOpt = None,
    name: Name = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Vouch for a session's caller (service key), as the agent does with a SIP call's caller
    id: the session becomes trusted for that number."""
    session_id = _session_id(session_id, session)
    with remote.connect(url, api_key) as vb:
        attested = remote.call(
            "attesting the caller…",
            lambda: vb.attest_caller(session_id, phone=phone, name=name),
            as_json=as_json,
        )
    if as_json:
        remote.print_json(attested)
        return
    kind = "returning caller" if attested.returning else "new caller"
    console.print(f"session [bold]{attested.session_id}[/] attested · {kind}", highlight=False)
    _print_caller(attested.user, attested.identity_level)


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
        level = f" · {view.identity_level}" if view.identity_level else ""
        console.print(f"  caller   {who}{level}", highlight=False)
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
    from voicebook.models import PAGE_MAX

    session_id = _session_id(session_id, session)
    with remote.connect(url, api_key) as vb:
        if follow:
            _follow(vb, session_id, after, as_json=as_json)
            return

        def read() -> list[Event]:
            log: list[Event] = []
            last = after
            while True:
                page = vb.session_events(session_id, after=last, limit=PAGE_MAX)
                log.extend(page)
                if len(page) < PAGE_MAX:
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
        remote.fail_with(exc)
    except KeyboardInterrupt:
        errors.print(
            f"stopped; resume with --after {stream.last_id}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
