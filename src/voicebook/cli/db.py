"""`voicebook db migrate | status | schema | prune`."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from voicebook.cli.common import AsJson, DatabaseUrl, console, load_settings, opened_store, run

app = typer.Typer(
    help="Database schema: apply migrations, show their state, print the schema; retention.",
)


@app.command()
def migrate(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Apply the migrations the database lacks. Safe to run twice, or from two processes."""
    settings = load_settings(database_url=database_url)

    async def apply() -> tuple[str, list]:  # type: ignore[type-arg]
        async with opened_store(settings, managing_schema=True) as store:
            return store.display_url, await store.migrate()

    where, applied = run(apply())
    if as_json:
        done = [{"version": m.version, "name": m.name} for m in applied]
        typer.echo(json.dumps({"database": where, "applied": done}, indent=2))
        return
    for migration in applied:
        console.print(f"applied [bold]{migration.version:04d}[/] {migration.name}")
    console.print(f"database [bold]{where}[/] is up to date", highlight=False)


@app.command()
def status(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Show applied and pending migrations."""
    settings = load_settings(database_url=database_url)

    async def read():  # type: ignore[no-untyped-def]
        async with opened_store(settings, managing_schema=True) as store:
            return store.display_url, await store.migration_state()

    where, state = run(read())
    if as_json:
        document = {
            "database": where,
            "applied": [
                {"version": v, "name": name, "applied_at": at.isoformat()}
                for v, name, at in state.applied
            ],
            "pending": [{"version": m.version, "name": m.name} for m in state.pending],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"migrations of {where}")
    table.add_column("version")
    table.add_column("name")
    table.add_column("state")
    for version, name, applied_at in state.applied:
        table.add_row(f"{version:04d}", name, f"applied {applied_at:%Y-%m-%d %H:%M:%S} UTC")
    for migration in state.pending:
        table.add_row(f"{migration.version:04d}", migration.name, "[yellow]pending[/]")
    console.print(table)
    if state.pending:
        console.print("run [bold]voicebook db migrate[/] to apply the pending ones")


@app.command()
def schema(
    as_json: Annotated[bool, typer.Option("--json", help='Print {"schema": SQL} as JSON.')] = False,
) -> None:
    """Print the full Postgres schema (what supabase_schema.sql holds)."""
    from voicebook.store.migrations import postgres_schema_script

    if as_json:
        typer.echo(json.dumps({"schema": postgres_schema_script()}))
        return
    typer.echo(postgres_schema_script(), nl=False)


@app.command()
def prune(
    days: Annotated[
        Optional[int],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option(
            "--days",
            min=1,
            help="Delete sessions that ended more than this many days ago "
            "(default: VOICEBOOK_RETENTION_DAYS).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {removed_sessions, before, days} as JSON.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete ended sessions past retention, with their events, transcripts, verification codes
    and idempotency keys; appointments stay. Safe to run at any time, and twice."""
    settings = load_settings(database_url=database_url, retention_days=days)

    async def delete():  # type: ignore[no-untyped-def]
        from voicebook.scheduling.service import utc_now
        from voicebook.store.retention import prune_ended, retention_cutoff

        before = retention_cutoff(utc_now(), settings.retention_days)
        async with opened_store(settings) as store:
            return store.display_url, before, await prune_ended(store, before)

    where, before, removed = run(delete())
    if as_json:
        report = {
            "removed_sessions": removed,
            "before": before.isoformat(),
            "days": settings.retention_days,
        }
        typer.echo(json.dumps(report))
        return
    plural = "" if removed == 1 else "s"
    console.print(
        f"removed [bold]{removed}[/] session{plural} that ended before "
        f"{before:%Y-%m-%d %H:%M} UTC ({settings.retention_days} days) from [bold]{where}[/]",
        highlight=False,
    )
