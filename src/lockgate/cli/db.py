"""``lockgate db upgrade|current``."""

from __future__ import annotations

import typer

from lockgate.cli.context import state_of
from lockgate.cli.output import console

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


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
