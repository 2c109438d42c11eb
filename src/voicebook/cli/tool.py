"""`voicebook tool <name> --session ID [options]`: call one of the eight tools on a running server.

One sub-command per tool, with only the options that tool takes; each is a thin shell over the
SDK method of the same name (the service key comes from --api-key or VOICEBOOK_API_KEY). Output is
readable (tables for slots and appointments) or, with `--json`, the tool's answer as JSON alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from voicebook.cli import remote
from voicebook.cli.common import AsJson, PartOfDay, console, local_date
from voicebook.cli.remote import ApiKey, Url

if TYPE_CHECKING:
    from voicebook.models import (
        BookAppointmentResponse,
        CancelAppointmentResponse,
        EndConversationResponse,
        FetchSlotsResponse,
        IdentifyUserResponse,
        ModifyAppointmentResponse,
        RetrieveAppointmentsResponse,
        VerifyCallerResponse,
    )

app = typer.Typer(
    help="Call one of the eight tools on a session, as the agent does "
    "(e.g. `voicebook tool book_appointment --session S --slot X`).",
    no_args_is_help=True,
)


Name = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--name", help="The caller's name.", show_default=False),
]
Start = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--start",
        help="ISO 8601 time, e.g. 2027-03-02T15:00 (no offset: the business zone).",
        show_default=False,
    ),
]
AppointmentId = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--appointment", help="Appointment id.", show_default=False),
]


def _instant(value: str | None, option: str) -> str | None:
    """`value` checked as an ISO 8601 date-time (the server reads it; a typo is a usage error)."""
    if value is None:
        return None
    text = value.strip()
    try:
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2027-03-02T15:00 or 2027-03-02T15:00-05:00",
            param_hint=f"'{option}'",
        ) from None
    return text


def _one_of(first: tuple[str, Any], second: tuple[str, Any]) -> None:
    if (first[1] is None) == (second[1] is None):
        raise typer.BadParameter(
            "give exactly one of them", param_hint=f"'{first[0]}' / '{second[0]}'"
        )


@dataclass(frozen=True)
class ToolCall:
    """The options every tool command shares, read once for all seven (`tool_command`)."""

    session: str
    as_json: bool
    idempotency_key: str | None
    url: str | None
    api_key: str | None

    def __call__(self, tool: str, **arguments: Any) -> Any:
        """Call `tool` through the SDK method of that name; with --json print its answer and
        stop."""
        with remote.connect(self.url, self.api_key) as vb:
            method = getattr(vb, tool)
            answer = remote.call(
                f"{tool} on {vb.base_url}…",
                lambda: method(self.session, idempotency_key=self.idempotency_key, **arguments),
                as_json=self.as_json,
            )
        if self.as_json:
            remote.print_json(answer)
            raise typer.Exit()
        return answer


# Typer reads these annotations at run time: Optional[...] stays for Python 3.10.
SHARED = {
    "session": Annotated[
        str,
        typer.Option(
            "--session",
            help="The session id (from `voicebook session start`); --session=ID for one that "
            "starts with '-' works too.",
            show_default=False,
        ),
    ],
    "as_json": AsJson,
    "idempotency_key": Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--idempotency-key",
            help="Repeat a call with the same key to get the first answer again (default: a new "
            "key).",
            show_default=False,
        ),
    ],
    "url": Url,
    "api_key": ApiKey,
}
"""The shared options, in the order `--help` lists them around a command's own: --session
first, the others last."""
_DEFAULTS: dict[str, Any] = {
    "as_json": False,
    "idempotency_key": None,
    "url": None,
    "api_key": None,
}


def tool_command(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `fn(call: ToolCall, **own_options)` as `voicebook tool NAME`: the command takes
    the shared options (`SHARED`) as well as `fn`'s own, and hands them to `fn` as one
    `ToolCall`."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(fn, eval_str=True)
        mine = [p for p in own.parameters.values() if p.name != "call"]

        def shared(option: str) -> inspect.Parameter:
            default = _DEFAULTS.get(option, inspect.Parameter.empty)
            kind = inspect.Parameter.KEYWORD_ONLY
            return inspect.Parameter(option, kind, default=default, annotation=SHARED[option])

        parameters = [
            shared("session"),
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in mine),
            *(shared(option) for option in SHARED if option != "session"),
        ]

        @functools.wraps(fn)
        def command(**options: Any) -> None:
            call = ToolCall(**{option: options.pop(option) for option in SHARED})
            fn(call, **options)

        command.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        app.command(name)(command)
        return fn

    return register


@tool_command("identify_user")
def identify_user(
    call: ToolCall,
    phone: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--phone",
            help="The caller's phone, in any common form (leave out when the session is "
            "trusted: started with --phone, or attested).",
            show_default=False,
        ),
    ] = None,
    name: Name = None,
) -> None:
    """Identify the caller by phone and bind them to the session (claimed until proved)."""
    answer: IdentifyUserResponse = call(
        "identify_user",
        phone=phone,
        name=name,
    )
    user = answer.user
    who = user.phone_masked + (f" ({user.name})" if user.name else "")
    kind = "returning caller" if answer.returning else "new caller"
    console.print(
        f"identified [bold]{who}[/] · {answer.level} · {kind} · user {user.id}", highlight=False
    )
    remote.print_appointments(answer.upcoming, "upcoming appointments")
    if answer.verification_required:
        _verification_hint(call.session)


def _verification_hint(session: str) -> None:
    console.print(
        "earlier bookings stay hidden until the number is proved: "
        f"voicebook tool verify_caller --session {session}",
        highlight=False,
        soft_wrap=True,
    )


@tool_command("verify_caller")
def verify_caller(
    call: ToolCall,
    code: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--code",
            help="The six-digit code the caller received; leave out to send (or resend) one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Prove the caller's number: send a code to it, then check the code (--code) they read back."""
    answer: VerifyCallerResponse = call(
        "verify_caller",
        code=code,
    )
    user = answer.user
    if answer.status == "code_sent":
        expires = (
            f" · expires {answer.expires_at.astimezone().isoformat(timespec='seconds')}"
            if answer.expires_at
            else ""
        )
        console.print(f"code sent to [bold]{user.phone_masked}[/]{expires}", highlight=False)
        console.print(
            f"  next    voicebook tool verify_caller --session {call.session} --code …",
            highlight=False,
            soft_wrap=True,
        )
        return
    who = user.phone_masked + (f" ({user.name})" if user.name else "")
    console.print(f"verified [bold]{who}[/] · {answer.level}", highlight=False)
    remote.print_appointments(answer.upcoming, "upcoming appointments")


@tool_command("fetch_slots")
def fetch_slots(
    call: ToolCall,
    on: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--date", help="Local date (YYYY-MM-DD) in the business zone.", show_default=False
        ),
    ] = None,
    part_of_day: Annotated[
        Optional[PartOfDay],  # noqa: UP045
        typer.Option("--part-of-day", help="Only this part of the day.", show_default=False),
    ] = None,
    limit: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--limit",
            min=1,
            max=200,
            help="How many slots (default: the server's, 5).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Free slots, soonest first."""
    local_date(on)
    answer: FetchSlotsResponse = call(
        "fetch_slots",
        date=on,
        part_of_day=part_of_day.value if part_of_day else None,
        limit=limit,
    )
    where = " ".join(x for x in (on, part_of_day.value if part_of_day else None) if x)
    title = f"free slots ({answer.timezone})" + (f" · {where}" if where else "")
    if answer.slots:
        remote.print_slots(answer.slots, title)
    else:
        console.print(f"{title}: none", highlight=False)


@tool_command("book_appointment")
def book_appointment(
    call: ToolCall,
    slot: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--slot", help="A slot id from fetch_slots.", show_default=False),
    ] = None,
    start: Start = None,
    name: Name = None,
    notes: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--notes", help="Notes for the appointment.", show_default=False),
    ] = None,
) -> None:
    """Book the identified caller into a slot (--slot) or at a time (--start)."""
    _one_of(("--slot", slot), ("--start", start))
    answer: BookAppointmentResponse = call(
        "book_appointment",
        slot_id=slot,
        start=_instant(start, "--start"),
        name=name,
        notes=notes,
    )
    booked = answer.appointment
    console.print(f"booked [bold]{booked.label}[/]", highlight=False)
    console.print(f"  appointment  {booked.id}", highlight=False, soft_wrap=True)


@tool_command("retrieve_appointments")
def retrieve_appointments(
    call: ToolCall,
    include_past: Annotated[
        bool, typer.Option("--include-past", help="Also appointments that are over.")
    ] = False,
    include_cancelled: Annotated[
        bool, typer.Option("--include-cancelled", help="Also cancelled ones.")
    ] = False,
) -> None:
    """The identified caller's appointments (upcoming and confirmed unless asked otherwise)."""
    answer: RetrieveAppointmentsResponse = call(
        "retrieve_appointments",
        include_past=include_past,
        include_cancelled=include_cancelled,
    )
    remote.print_appointments(answer.appointments, "appointments")
    if answer.verification_required:
        _verification_hint(call.session)


@tool_command("cancel_appointment")
def cancel_appointment(
    call: ToolCall,
    appointment: AppointmentId = None,
    start: Start = None,
    reason: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reason", help="Why (kept in the history).", show_default=False),
    ] = None,
) -> None:
    """Cancel one of the caller's appointments, by id (--appointment) or start (--start)."""
    _one_of(("--appointment", appointment), ("--start", start))
    answer: CancelAppointmentResponse = call(
        "cancel_appointment",
        appointment_id=appointment,
        start=_instant(start, "--start"),
        reason=reason,
    )
    console.print(f"cancelled [bold]{answer.appointment.label}[/]", highlight=False)
    console.print(f"  appointment  {answer.appointment.id}", highlight=False, soft_wrap=True)


@tool_command("modify_appointment")
def modify_appointment(
    call: ToolCall,
    appointment: AppointmentId = None,
    start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--start", help="Start of the appointment to move (ISO 8601).", show_default=False
        ),
    ] = None,
    new_slot: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--new-slot", help="The new slot id (from fetch_slots).", show_default=False),
    ] = None,
    new_start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--new-start", help="The new time (ISO 8601).", show_default=False),
    ] = None,
) -> None:
    """Move one of the caller's appointments to a new slot or time, in one transaction."""
    _one_of(("--appointment", appointment), ("--start", start))
    _one_of(("--new-slot", new_slot), ("--new-start", new_start))
    answer: ModifyAppointmentResponse = call(
        "modify_appointment",
        appointment_id=appointment,
        start=_instant(start, "--start"),
        new_slot_id=new_slot,
        new_start=_instant(new_start, "--new-start"),
    )
    console.print(
        f"moved [bold]{answer.previous.label}[/] → [bold]{answer.appointment.label}[/]",
        highlight=False,
    )
    console.print(f"  appointment  {answer.appointment.id}", highlight=False, soft_wrap=True)


@tool_command("end_conversation")
def end_conversation(
    call: ToolCall,
    preference: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--preference", help="A preference the caller stated (repeatable).", show_default=False
        ),
    ] = None,
    recap: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--recap", help="The agent's recap of the call.", show_default=False),
    ] = None,
) -> None:
    """Close the session; the server builds and returns the summary."""
    answer: EndConversationResponse = call(
        "end_conversation",
        preferences=preference or None,
        recap=recap,
    )
    remote.print_summary(answer.summary)
