"""What the commands that talk to a running server share (`voicebook session`, `voicebook tool`).

- `--url` / `--api-key` / `--json` options; without them the SDK reads VOICEBOOK_URL (else
  BACKEND_BASE_URL, else http://127.0.0.1:8000) and VOICEBOOK_API_KEY from the environment, else
  from the working directory's `.env` — the same file the server reads.
- `connect()`: one SDK `Client` for the command; `call()`: runs SDK calls under a spinner on
  stderr (only when stderr is a terminal and not in `--json` mode) and turns SDK errors into exit
  codes: 1 a domain error (its sentence on stderr), 2 usage or configuration (a bad URL, a wrong
  service key), 3 the server cannot be reached (naming the URL) or cannot serve now (503).
  In `--json` mode stdout gets the error as `{"error": {...}}` (see `cli.report`).
- Rendering of the wire models as Rich tables and lines.

The SDK, httpx and pydantic are imported inside the functions, never at import time: this module
is imported by `voicebook --help`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional, TypeVar

import typer

from voicebook.cli.common import EXIT_DOMAIN, EXIT_UNREACHABLE, EXIT_USAGE, console, errors, fail

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from voicebook.errors import VoicebookError
    from voicebook.models import Appointment, Event, Slot, Summary
    from voicebook.sdk import Client

T = TypeVar("T")

Url = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
    typer.Option(
        "--url",
        help="The server's base URL (default: VOICEBOOK_URL, else BACKEND_BASE_URL, else "
        "http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKey = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--api-key",
        help="The service key (default: VOICEBOOK_API_KEY).",
        show_default=False,
    ),
]


@contextlib.contextmanager
def connect(url: str | None, api_key: str | None) -> Iterator[Client]:
    """The command's SDK client: a few quick retries (a command should fail fast when the server
    is down, yet ride out a brief 429/503)."""
    import ssl

    import httpx

    from voicebook.sdk import Client, RetryPolicy
    from voicebook.sdk.protocol import DEFAULT_TIMEOUT_S, resolve_api_key, resolve_base_url

    retry = RetryPolicy(max_attempts=3, max_total_s=10.0, base_delay_s=0.25, max_delay_s=2.0)
    from voicebook.errors import VoicebookError

    try:
        base_url = resolve_base_url(url)
        resolve_api_key(api_key)  # a key no header can carry: InvalidInput, naming the fix
    except ValueError as exc:  # the URL is not http(s)://
        fail(f"--url: {exc}", EXIT_USAGE, code="invalid_url")
    except VoicebookError as exc:
        fail(exc.message, EXIT_USAGE, code=exc.code)
    # Plain http never does TLS, so skip loading the CA bundle (tens of ms of a cold start): a
    # bare client context that verifies certificates but trusts no CA, so TLS fails closed.
    verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if base_url.startswith("http://") else True
    with (
        httpx.Client(timeout=DEFAULT_TIMEOUT_S, verify=verify) as http,
        Client(base_url, api_key, retry=retry, http_client=http) as client,
    ):
        yield client


@contextlib.contextmanager
def spinner(text: str, *, enabled: bool = True) -> Iterator[None]:
    """A transient spinner on stderr while waiting, only when stderr is a terminal."""
    if not enabled or not errors.is_terminal:
        yield
        return
    with errors.status(text, spinner="dots"):
        yield


def call(what: str, fn: Callable[[], T], *, as_json: bool) -> T:
    """`fn()` (SDK calls) under a spinner saying `what`; an SDK error ends the command."""
    from voicebook.errors import VoicebookError

    try:
        with spinner(what, enabled=not as_json):
            return fn()
    except VoicebookError as exc:
        fail_with(exc)


def exit_code(exc: VoicebookError) -> int:
    """The exit code for an SDK error (see the module doc)."""
    from voicebook.errors import ConnectionFailed, ServiceUnavailable, Unauthorized

    if isinstance(exc, Unauthorized):
        return EXIT_USAGE
    if isinstance(exc, ConnectionFailed) and exc.status is None:
        return EXIT_UNREACHABLE
    # a 503 that waiting does not lift (LiveKit or verification not set up) is the server's answer
    if isinstance(exc, ServiceUnavailable) and exc.transient:
        return EXIT_UNREACHABLE
    return EXIT_DOMAIN


def error_message(exc: VoicebookError) -> str:
    """The sentence for an SDK error: what to do about it (`cli.fixes`), else the server's."""
    from voicebook.cli.fixes import fix_for
    from voicebook.errors import ConnectionFailed, TimedOut, Unauthorized

    if isinstance(exc, ConnectionFailed) and exc.status is None and not isinstance(exc, TimedOut):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause and str(cause) else exc.message
        return (
            f"cannot reach the voicebook server at {exc.url} ({detail}); is it running? "
            "Pass --url or set VOICEBOOK_URL."
        )
    message = fix_for(exc.code, exc.message)
    if isinstance(exc, Unauthorized):
        message += (
            " Pass the server's key with --api-key, or set VOICEBOOK_API_KEY to it (in the"
            " environment or this directory's .env)."
        )
    return message


def fail_with(exc: VoicebookError) -> NoReturn:
    """End the command on an SDK error (`cli.report` prints it; with --json the document holds
    the server's error fields, its HTTP status and the URL)."""
    from voicebook.cli.report import json_mode
    from voicebook.errors import SlotTaken

    details: dict[str, Any] = dict(exc.details)
    if exc.status is not None:
        details["status"] = exc.status
    url = getattr(exc, "url", None)
    if url:
        details["url"] = url
    if isinstance(exc, SlotTaken) and exc.alternatives and not json_mode():
        errors.print("free instead:", highlight=False)
        for slot in exc.alternatives:
            errors.print(f"  {slot.label}  --slot {slot.slot_id}", highlight=False, soft_wrap=True)
    fail(error_message(exc), exit_code(exc), code=exc.code, **details)


def print_json(value: Any) -> None:
    """A wire model, or a list of them, as indented JSON on stdout (nothing else)."""
    from pydantic_core import to_json

    typer.echo(to_json(value, indent=2).decode())


# --- rendering ------------------------------------------------------------------------------------


def _widest(items: list[Any], field: str) -> int:
    """Ids are copied from tables into the next command: their column never wraps or shrinks."""
    return max((len(getattr(item, field)) for item in items), default=0)


def slots_table(slots: list[Slot], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("when", ratio=1)
    table.add_column("start", no_wrap=True)
    table.add_column("slot id", style="cyan", no_wrap=True, min_width=_widest(slots, "slot_id"))
    for slot in slots:
        table.add_row(slot.label, slot.start.isoformat(timespec="minutes"), slot.slot_id)
    return table


def print_slots(slots: list[Slot], title: str) -> None:
    """The slots as a table, or, on a terminal too narrow for its columns' longest words, as
    lines that wrap: an id is never cut (it is what the next command is given)."""
    from rich.measure import Measurement

    table = slots_table(slots, title)
    unbounded = console.options.update(width=10_000)
    if Measurement.get(console, unbounded, table).minimum <= console.width:
        console.print(table)
        return
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    for slot in slots:
        start = slot.start.isoformat(timespec="minutes")
        console.print(f"  {slot.label}  {start}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"    {slot.slot_id}", style="cyan", markup=False, soft_wrap=True)


STATUS_STYLE = {"confirmed": "green", "cancelled": "red", "rescheduled": "yellow"}


def appointments_table(appointments: list[Appointment], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("when", ratio=1)
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("name")
    table.add_column("notes")
    table.add_column(
        "appointment id", style="cyan", no_wrap=True, min_width=_widest(appointments, "id")
    )
    for item in appointments:
        style = STATUS_STYLE.get(item.status, "")
        table.add_row(
            item.label,
            f"[{style}]{item.status}[/]" if style else item.status,
            item.name or "",
            item.notes or "",
            item.id,
        )
    return table


def print_appointments(appointments: list[Appointment], title: str) -> None:
    if appointments:
        console.print(appointments_table(appointments, title))
    else:
        console.print(f"{title}: none", highlight=False)


def print_summary(summary: Summary) -> None:
    """A session's summary: the sentence, the caller, bookings, actions, preferences, cost."""
    from rich.table import Table

    console.print(f"[bold]summary[/]  {summary.summary}", highlight=False)
    console.print(f"  caller       {summary.contact_number or '(not identified)'}", highlight=False)
    if summary.duration_s is not None:
        console.print(f"  duration     {summary.duration_s:.1f} s", highlight=False)
    for action in summary.actions:
        moved = f" (was {action.previous_label})" if action.previous_label else ""
        console.print(f"  {action.kind:<12} {action.label}{moved}", highlight=False)
    if summary.preferences:
        console.print(f"  preferences  {'; '.join(summary.preferences)}", highlight=False)
    if summary.cost:
        total = summary.cost.get("total")
        currency = summary.cost.get("currency", "")
        if total is not None:
            console.print(f"  cost         {total} {currency}".rstrip(), highlight=False)
    if summary.booked_appointments:
        table = Table(title="booked in this session", title_justify="left")
        table.add_column("date", no_wrap=True)
        table.add_column("time", no_wrap=True)
        table.add_column("status", no_wrap=True, min_width=11)
        table.add_column("name")
        table.add_column(
            "appointment id",
            style="cyan",
            no_wrap=True,
            min_width=_widest(summary.booked_appointments, "id"),
        )
        for booked in summary.booked_appointments:
            table.add_row(booked.date, booked.time, booked.status, booked.name or "", booked.id)
        console.print(table)


TOOL_STATUS_STYLE = {"started": "dim", "completed": "green", "failed": "bold red"}
TYPE_STYLE = {
    "status": "blue",
    "tool_call": "magenta",
    "transcript": "white",
    "summary": "cyan",
    "session_closed": "blue",
}


def event_line(event: Event) -> Text:
    """One line of the timeline: local time, id, type, and what happened."""
    from rich.text import Text

    payload = event.payload
    line = Text.assemble(
        (event.timestamp.astimezone().strftime("%H:%M:%S"), "dim"),
        " ",
        (f"#{event.id:<3}", "dim"),
        " ",
        (f"{event.type:<14}", TYPE_STYLE.get(event.type, "")),
        " ",
    )
    if event.type == "tool_call":
        status = str(payload.get("status", ""))
        line.append(f"{payload.get('name', '?')} ", "bold")
        line.append(f"{status:<9}", TOOL_STATUS_STYLE.get(status, ""))
        line.append(" ")
        line.append(str(payload.get("detail", "")))
        error = payload.get("error")
        if isinstance(error, dict) and error.get("code"):
            line.append(f" [{error['code']}]", "red")
        duration = payload.get("duration_ms")
        if isinstance(duration, (int, float)):
            line.append(f" ({duration:.0f} ms)", "dim")
    elif event.type == "status":
        line.append(f"state {payload.get('state', '?')}")
    elif event.type == "transcript":
        line.append(f"{payload.get('role', '?')}: ", "bold")
        line.append(str(payload.get("text", "")))
        if payload.get("final") is False:
            line.append(" …", "dim")
    elif event.type == "summary":
        line.append(str(payload.get("summary", "")))
    elif event.type == "session_closed":
        line.append("session closed")
    else:
        import json

        line.append(json.dumps(payload, default=str))
    return line
