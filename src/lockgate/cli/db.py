"""``lockgate db upgrade|current|prune``."""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.cli.context import state_of, whoami
from lockgate.cli.output import Output, console, err_console, print_json

db_app = typer.Typer(help="Database schema and retention.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema (safe to run repeatedly and concurrently)."""
    lg = state_of(ctx).app(migrate=True)
    console.print(f"database at revision {lg.schema_revision()}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision the database is at."""
    revision = state_of(ctx).app().schema_revision()
    console.print(revision or "(empty: run `lockgate db upgrade`)")


@db_app.command("prune")
def db_prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Delete finished runs past their keep time now (LOCKGATE_RETAIN_SUCCEEDED_DAYS,
    _FAILED_DAYS; the newest LOCKGATE_RETAIN_LAST of each pipeline stay), in small batches.
    lockgate server does this every hour by itself."""
    retention = state_of(ctx).app().acting(whoami()).retention

    def progress(gone: dict[str, int]) -> None:
        if output is Output.table:
            err_console.print(f"pruned {sum(gone.values())} runs so far", highlight=False)

    gone = retention.prune(dry_run=dry_run, progress=progress)
    if output is Output.json:
        print_json({"dry_run": dry_run, "runs": gone, "total": sum(gone.values())})
        return
    verb = "would delete" if dry_run else "deleted"
    parts = ", ".join(f"{n} {status}" for status, n in sorted(gone.items())) or "nothing"
    console.print(f"{verb} {sum(gone.values())} runs: {parts}", highlight=False)
