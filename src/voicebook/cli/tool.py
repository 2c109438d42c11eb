"""`voicebook tool <name> --session ID [options]`: call one of the eight tools on a running server.

One sub-command per tool, with only the options that tool takes; each is a thin shell over the
SDK method of the same name (the service key comes from --api-key or VOICEBOOK_API_KEY). Output is
readable (tables for slots and appointments) or, with `--json`, the tool's answer as JSON alone.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from voicebook.cli import remote
from voicebook.cli.common import console
from voicebook.cli.remote import ApiKey, AsJson, Url

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


class PartOfDay(str, Enum):
    morning = "morning"
    afternoon = "afternoon"
    evening = "evening"


# Typer reads these annotations at run time: Optional[...] stays for Python 3.10.
Session = Annotated[
    str,
    typer.Option(
        "--session", help="The session id (from `voicebook session start`).", show_default=False
    ),
]
IdempotencyKey = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--idempotency-key",
        help="Repeat a call with the same key to get the first answer again (default: a new key).",
        show_default=False,
        rich_help_panel=remote.SERVER_PANEL,
    ),
]
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


def _run(
    tool: str,
    session: str,
    *,
    url: str | None,
    api_key: str | None,
    as_json: bool,
    idempotency_key: str | None,
    **arguments: Any,
) -> Any:
    """Call `tool` through the SDK method of that name; with --json print its answer and stop."""
    with remote.connect(url, api_key) as vb:
        method = getattr(vb, tool)
        answer = remote.call(
            f"{tool} on {vb.base_url}…",
            lambda: method(session, idempotency_key=idempotency_key, **arguments),
            as_json=as_json,
        )
    if as_json:
        remote.print_json(answer)
        raise typer.Exit()
    return answer


@app.command("identify_user")
def identify_user(
    session: Session,
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
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Identify the caller by phone and bind them to the session (claimed until proved)."""
    answer: IdentifyUserResponse = _run(
        "identify_user",
        session,
        phone=phone,
        name=name,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    user = answer.user
    who = user.phone_masked + (f" ({user.name})" if user.name else "")
    kind = "returning caller" if answer.returning else "new caller"
    console.print(
        f"identified [bold]{who}[/] · {answer.level} · {kind} · user {user.id}", highlight=False
    )
    remote.print_appointments(answer.upcoming, "upcoming appointments")
    if answer.verification_required:
        _verification_hint(session)


def _verification_hint(session: str) -> None:
    console.print(
        "earlier bookings stay hidden until the number is proved: "
        f"voicebook tool verify_caller --session {session}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("verify_caller")
def verify_caller(
    session: Session,
    code: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--code",
            help="The six-digit code the caller received; leave out to send (or resend) one.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Prove the caller's number: send a code to it, then check the code (--code) they read back."""
    answer: VerifyCallerResponse = _run(
        "verify_caller",
        session,
        code=code,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
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
            f"  next    voicebook tool verify_caller --session {session} --code …",
            highlight=False,
            soft_wrap=True,
        )
        return
    who = user.phone_masked + (f" ({user.name})" if user.name else "")
    console.print(f"verified [bold]{who}[/] · {answer.level}", highlight=False)
    remote.print_appointments(answer.upcoming, "upcoming appointments")


@app.command("fetch_slots")
def fetch_slots(
    session: Session,
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
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Free slots, soonest first."""
    if on is not None:
        try:
            date.fromisoformat(on)
        except ValueError:
            raise typer.BadParameter(
                f"{on!r} is not a date in the form YYYY-MM-DD", param_hint="'--date'"
            ) from None
    answer: FetchSlotsResponse = _run(
        "fetch_slots",
        session,
        date=on,
        part_of_day=part_of_day.value if part_of_day else None,
        limit=limit,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    where = " ".join(x for x in (on, part_of_day.value if part_of_day else None) if x)
    title = f"free slots ({answer.timezone})" + (f" · {where}" if where else "")
    if answer.slots:
        console.print(remote.slots_table(answer.slots, title))
    else:
        console.print(f"{title}: none", highlight=False)


@app.command("book_appointment")
def book_appointment(
    session: Session,
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
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Book the identified caller into a slot (--slot) or at a time (--start)."""
    _one_of(("--slot", slot), ("--start", start))
    answer: BookAppointmentResponse = _run(
        "book_appointment",
        session,
        slot_id=slot,
        start=_instant(start, "--start"),
        name=name,
        notes=notes,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    booked = answer.appointment
    console.print(f"booked [bold]{booked.label}[/]", highlight=False)
    console.print(f"  appointment  {booked.id}", highlight=False, soft_wrap=True)


@app.command("retrieve_appointments")
def retrieve_appointments(
    session: Session,
    include_past: Annotated[
        bool, typer.Option("--include-past", help="Also appointments that are over.")
    ] = False,
    include_cancelled: Annotated[
        bool, typer.Option("--include-cancelled", help="Also cancelled ones.")
    ] = False,
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The identified caller's appointments (upcoming and confirmed unless asked otherwise)."""
    answer: RetrieveAppointmentsResponse = _run(
        "retrieve_appointments",
        session,
        include_past=include_past,
        include_cancelled=include_cancelled,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    remote.print_appointments(answer.appointments, "appointments")
    if answer.verification_required:
        _verification_hint(session)


@app.command("cancel_appointment")
def cancel_appointment(
    session: Session,
    appointment: AppointmentId = None,
    start: Start = None,
    reason: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reason", help="Why (kept in the history).", show_default=False),
    ] = None,
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel one of the caller's appointments, by id (--appointment) or start (--start)."""
    _one_of(("--appointment", appointment), ("--start", start))
    answer: CancelAppointmentResponse = _run(
        "cancel_appointment",
        session,
        appointment_id=appointment,
        start=_instant(start, "--start"),
        reason=reason,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    console.print(f"cancelled [bold]{answer.appointment.label}[/]", highlight=False)
    console.print(f"  appointment  {answer.appointment.id}", highlight=False, soft_wrap=True)


@app.command("modify_appointment")
def modify_appointment(
    session: Session,
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
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Move one of the caller's appointments to a new slot or time, in one transaction."""
    _one_of(("--appointment", appointment), ("--start", start))
    _one_of(("--new-slot", new_slot), ("--new-start", new_start))
    answer: ModifyAppointmentResponse = _run(
        "modify_appointment",
        session,
        appointment_id=appointment,
        start=_instant(start, "--start"),
        new_slot_id=new_slot,
        new_start=_instant(new_start, "--new-start"),
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    console.print(
        f"moved [bold]{answer.previous.label}[/] → [bold]{answer.appointment.label}[/]",
        highlight=False,
    )
    console.print(f"  appointment  {answer.appointment.id}", highlight=False, soft_wrap=True)


@app.command("end_conversation")
def end_conversation(
    session: Session,
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
    as_json: AsJson = False,
    idempotency_key: IdempotencyKey = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Close the session; the server builds and returns the summary."""
    answer: EndConversationResponse = _run(
        "end_conversation",
        session,
        preferences=preference or None,
        recap=recap,
        url=url,
        api_key=api_key,
        as_json=as_json,
        idempotency_key=idempotency_key,
    )
    remote.print_summary(answer.summary)
