"""`voicebook appointments [--date D] [--staff S] [--json]`: the business's day on a running server.

A thin shell over the SDK's `business_appointments` (service key): it follows `next` until the
day is read whole, then prints a Rich table per resource (ids in full, whatever the terminal's
width: they are what the next command is given) or, with `--json`, one document: the day, its
zone and every appointment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from voicebook.cli import remote
from voicebook.cli.common import AsJson, console, local_date
from voicebook.cli.remote import ApiKey, Url

if TYPE_CHECKING:
    from rich.table import Table

    from voicebook.models import BusinessAppointment, BusinessAppointmentsResponse
    from voicebook.sdk import Client


def _whole_day(vb: Client, on: str | None, staff: str | None) -> BusinessAppointmentsResponse:
    """Every page of the day, as one answer (its `next` is None)."""
    from voicebook.models import APPOINTMENTS_PAGE_MAX

    page = vb.business_appointments(date=on, resource=staff, limit=APPOINTMENTS_PAGE_MAX)
    items = list(page.appointments)
    while page.next is not None:
        page = vb.business_appointments(
            date=page.date, resource=staff, after=page.next, limit=APPOINTMENTS_PAGE_MAX
        )
        items.extend(page.appointments)
    return page.model_copy(update={"appointments": items, "next": None})


def _table(items: list[BusinessAppointment]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    rooms = any(i.room for i in items)
    table = Table()
    table.add_column("time", no_wrap=True)
    table.add_column("service", ratio=1)
    table.add_column("status", no_wrap=True)
    table.add_column("who", ratio=1)
    table.add_column("notes", ratio=2)
    if rooms:
        table.add_column("room", ratio=1)
    widest = max(len(i.id) for i in items)
    table.add_column("appointment id", style="cyan", no_wrap=True, min_width=widest)
    for i in items:
        style = remote.STATUS_STYLE.get(i.status, "")
        status = escape(_status(i))
        row = [
            f"{i.start:%H:%M}–{i.end:%H:%M}",
            escape(i.service_name or i.service or ""),
            f"[{style}]{status}[/]" if style else status,
            escape(f"{i.name or ''}\n{i.phone_masked}".strip()),
            escape(i.notes or ""),
        ]
        if rooms:
            row.append(escape(i.room_name or i.room or ""))
        table.add_row(*row, i.id)
    return table


def _status(item: BusinessAppointment) -> str:
    """The status, and "by the business" (or by the operator's account) when an operator made
    it so from the console."""
    if item.changed_by != "operator":
        return item.status
    return f"{item.status} by {item.changed_by_operator or 'the business'}"


def _stacked(items: list[BusinessAppointment]) -> None:
    """The same as lines, for a terminal too narrow for the table: long lines wrap, never cut."""
    for i in items:
        service = i.service_name or i.service or ""
        room = f" · {i.room_name or i.room}" if i.room else ""
        lines = [
            f"  {i.start:%H:%M}–{i.end:%H:%M}  {_status(i)}  {service}",
            f"    {i.name or ''} {i.phone_masked}{room}".rstrip(),
            *([f"    {i.notes}"] if i.notes else []),
        ]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(f"    {i.id}", style="cyan", markup=False, highlight=False, soft_wrap=True)


def _print_day(day: BusinessAppointmentsResponse) -> None:
    """One table per resource: the one asked for, else each staff member with bookings."""
    from rich.markup import escape
    from rich.measure import Measurement

    groups: dict[str, list[BusinessAppointment]] = {}
    for item in day.appointments:
        groups.setdefault(day.resource or item.resource or "?", []).append(item)
    if not groups:
        console.print(f"no appointments on {day.date} ({day.timezone})", highlight=False)
        return
    named = {
        resource: (items[0].room_name if items[0].room == resource else items[0].resource_name)
        or resource
        for resource, items in groups.items()
    }
    for resource, items in sorted(groups.items(), key=lambda group: named[group[0]]):
        name = named[resource]
        when = f"{day.date:%A, %B} {day.date.day}"
        heading = f"[bold]{escape(name)}[/] · {when} · {day.timezone}"
        console.print(heading, highlight=False, soft_wrap=True)
        table = _table(items)
        # A table narrower than its columns' longest words would crop ids: lines instead.
        unbounded = console.options.update(width=10_000)
        if Measurement.get(console, unbounded, table).minimum > console.width:
            _stacked(items)
        else:
            console.print(table)


def appointments(
    on: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option(
            "--date",
            help="Local date (YYYY-MM-DD) in the business zone (default: today there).",
            show_default=False,
        ),
    ] = None,
    staff: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--staff", help="Only this staff member's or room's (id or name).", show_default=False
        ),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The business's appointments of one day, every status, a table per staff member (service
    key; phones masked)."""
    local_date(on)
    with remote.connect(url, api_key) as vb:
        day = remote.call(
            "reading the appointments…", lambda: _whole_day(vb, on, staff), as_json=as_json
        )
    if as_json:
        remote.print_json(day)
        return
    _print_day(day)
