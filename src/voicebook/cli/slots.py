"""`voicebook slots`: the free slots the rules and the database give, as a table or JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer

from voicebook.cli.common import (
    DatabaseUrl,
    PartOfDay,
    console,
    load_settings,
    local_date,
    opened_store,
    run,
)


def slots(
    on: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option("--date", help="Local date (YYYY-MM-DD) in the business zone."),
    ] = None,
    part_of_day: Annotated[
        Optional[PartOfDay],  # noqa: UP045
        typer.Option("--part-of-day", help="Only this part of the day."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many slots.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List free appointment slots."""
    from voicebook.scheduling.service import SchedulingService

    day = date.fromisoformat(on) if local_date(on) else None
    settings = load_settings(database_url=database_url)

    async def find():  # type: ignore[no-untyped-def]
        async with opened_store(settings) as store:
            service = SchedulingService(store, settings.rules, business=settings.business_model)
            return await service.available_slots(
                on=day, part_of_day=part_of_day.value if part_of_day else None, limit=limit
            )

    result = run(find())
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    title = f"free slots ({result.timezone})" + (f" on {day}" if day else "")
    if result.slots:
        from voicebook.cli.remote import print_slots

        print_slots(result.slots, title)
    else:
        console.print("no free slots" + (f" on {day}" if day else " within the horizon"))
