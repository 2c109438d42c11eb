"""`voicebook slots`: the free slots the rules and the database give, as a table or JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer

from voicebook.cli.common import (
    EXIT_USAGE,
    DatabaseUrl,
    console,
    fail,
    load_settings,
    opened_store,
    run,
)


def slots(
    on: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option("--date", help="Local date (YYYY-MM-DD) in the business zone."),
    ] = None,
    part_of_day: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--part-of-day", help="morning, afternoon or evening."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many slots.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List free appointment slots."""
    from voicebook.scheduling.service import SchedulingService

    day = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            fail(f"--date {on!r} is not a date in the form YYYY-MM-DD", EXIT_USAGE)
    settings = load_settings(database_url=database_url)

    async def find():  # type: ignore[no-untyped-def]
        async with opened_store(settings) as store:
            service = SchedulingService(store, settings.rules, business=settings.business_model)
            return await service.available_slots(on=day, part_of_day=part_of_day, limit=limit)

    result = run(find())
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    title = f"free slots ({result.timezone})" + (f" on {day}" if day else "")
    from rich.table import Table

    table = Table(title=title)
    table.add_column("when", no_wrap=True)
    table.add_column("start")
    table.add_column("slot id", style="dim")
    for slot in result.slots:
        table.add_row(slot.label, slot.start.isoformat(timespec="minutes"), slot.slot_id)
    console.print(table)
    if not result.slots:
        console.print("no free slots" + (f" on {day}" if day else " within the horizon"))
