"""`voicebook config check [--json]`: is the configuration usable, and what does it describe?

It reads what the server would read (environment, `.env`, the business file) through
`load_settings()`, so a value it accepts is one `voicebook serve` accepts. Valid: every staff
member's and room's week as a table (days × opening ranges, closed dates, the services offered)
and the services, exit 0. Invalid: the ConfigError's `file:line: field: problem` lines, exit 2;
with `--json` a document either way, with an `error` object on failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from voicebook.cli.common import AsJson, config_failed, console

if TYPE_CHECKING:
    from voicebook.config import Settings
    from voicebook.scheduling.business import Business, Resource, Service

app = typer.Typer(
    help="The configuration (environment, .env, voicebook.toml): check it.",
)


def _service(service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "minutes": service.minutes,
        "buffer_before": service.buffer_before,
        "buffer_after": service.buffer_after,
        "price": service.price,
        "description": service.description,
    }


def _week(resource: Resource) -> dict[str, list[str]]:
    """Day name → its opening ranges ("09:00-12:00"); a closed day is an empty list."""
    from voicebook.scheduling.hours import DAY_NAMES

    return {
        name: [str(r) for r in resource.weekly.get(day, ())] for day, name in enumerate(DAY_NAMES)
    }


def _resource(resource: Resource) -> dict[str, Any]:
    return {
        "id": resource.id,
        "name": resource.name,
        "kind": resource.kind,
        "services": sorted(resource.services),
        "hours": _week(resource),
        "closed_dates": sorted(d.isoformat() for d in resource.closed_dates),
    }


def describe(settings: Settings, path: Path | None) -> dict[str, Any]:
    """The configuration as a JSON document: what `--json` prints, and what the tables show."""
    business: Business = settings.business_model
    info = settings.business
    return {
        "valid": True,
        "business_file": str(path) if path is not None else None,
        "business": info.model_dump() if info is not None else None,
        "timezone": settings.timezone,
        "min_notice_minutes": settings.min_notice_minutes,
        "horizon_days": settings.horizon_days,
        "closed_dates": sorted(d.isoformat() for d in business.rules.closed_dates),
        "services": [_service(s) for s in business.services],
        "resources": [_resource(r) for r in business.resources],
        "faq": [{"question": f.question, "answer": f.answer} for f in business.faq],
    }


def _minutes(value: int) -> str:
    return f"{value} min" if value else "—"


def _print(document: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    where = document["business_file"]
    source = f"business file {escape(where)}" if where else "no business file (one calendar)"
    console.print(f"[green]configuration is valid[/] · {source}", highlight=False)
    info = document["business"] or {}
    facts = [
        info.get("name") or "",
        document["timezone"],
        f"notice {document['min_notice_minutes']} min",
        f"horizon {document['horizon_days']} days",
    ]
    if info.get("cancellation_notice_hours") is not None:
        facts.append(f"cancellation notice {info['cancellation_notice_hours']:g} h")
    if document["closed_dates"]:
        facts.append("closed " + ", ".join(document["closed_dates"]))
    console.print(escape(" · ".join(f for f in facts if f)), highlight=False)

    services = Table(title="services", title_justify="left")
    for column in ("id", "name", "length", "before", "after", "price"):
        services.add_column(column, no_wrap=column == "id")
    names = {}
    for s in document["services"]:
        names[s["id"]] = s["name"]
        price = "—" if s["price"] is None else f"{s['price']:g}"
        services.add_row(
            s["id"],
            s["name"],
            f"{s['minutes']} min",
            _minutes(s["buffer_before"]),
            _minutes(s["buffer_after"]),
            price,
        )
    console.print(services)

    for r in document["resources"]:
        offers = ", ".join(names.get(i, i) for i in r["services"])
        closed = ", ".join(r["closed_dates"]) or "none of its own"
        # The heading is a line of its own: a table's title wraps at the (narrow) table's width.
        console.print(f"[bold]{escape(r['name'])}[/] · {r['kind']} · {r['id']}", highlight=False)
        week = Table()
        week.add_column("day", no_wrap=True)
        week.add_column("open", no_wrap=True)
        for day, ranges in r["hours"].items():
            week.add_row(day, "  ".join(ranges) if ranges else "[dim]closed[/]")
        console.print(week)
        console.print(f"  offers        {escape(offers)}", highlight=False)
        console.print(f"  closed dates  {closed}", highlight=False)
    if document["faq"]:
        console.print(f"FAQ entries: {len(document['faq'])}", highlight=False)


@app.command()
def check(as_json: AsJson = False) -> None:
    """Validate the configuration and print each staff member's and room's week and the
    services; a bad value exits 2 naming its file:line and field (or its variable)."""
    from voicebook.config import ConfigError, load_settings
    from voicebook.config_files import business_file_path

    try:
        settings = load_settings()
        settings.resolved_database_url()  # Supabase REST settings alone cannot serve
        document = describe(settings, business_file_path())
    except ConfigError as exc:
        config_failed(exc, beside={"valid": False})
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    _print(document)
