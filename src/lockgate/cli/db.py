"""``lockgate db upgrade|current``."""

from __future__ import annotations

import typer

from lockgate.cli.context import state_of
from lockgate.cli.output import console
from lockgate.store.migrate import current

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema (safe to run repeatedly and concurrently)."""
    lg = state_of(ctx).app(migrate=True)
    console.print(f"database at revision {current(lg.store)}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision the database is at."""
    console.print(current(state_of(ctx).app().store) or "(empty: run `lockgate db upgrade`)")
