"""`voicebook db migrate | status | schema`."""

from __future__ import annotations

import typer

from voicebook.cli.common import DatabaseUrl, console, load_settings, opened_store, run

app = typer.Typer(help="Database schema: apply migrations, show their state, print the schema.")


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply the migrations the database lacks. Safe to run twice, or from two processes."""
    settings = load_settings(database_url=database_url)

    async def apply() -> tuple[str, list]:  # type: ignore[type-arg]
        async with opened_store(settings, managing_schema=True) as store:
            return store.display_url, await store.migrate()

    where, applied = run(apply())
    for migration in applied:
        console.print(f"applied [bold]{migration.version:04d}[/] {migration.name}")
    console.print(f"database [bold]{where}[/] is up to date", highlight=False)


@app.command()
def status(database_url: DatabaseUrl = None) -> None:
    """Show applied and pending migrations."""
    settings = load_settings(database_url=database_url)

    async def read():  # type: ignore[no-untyped-def]
        async with opened_store(settings, managing_schema=True) as store:
            return store.display_url, await store.migration_state()

    where, state = run(read())
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
def schema() -> None:
    """Print the full Postgres schema (what supabase_schema.sql holds)."""
    from voicebook.store.migrations import postgres_schema_script

    typer.echo(postgres_schema_script(), nl=False)
