"""``lockgate db upgrade|current``."""

from __future__ import annotations

import typer

from lockgate.cli.context import (
    CliState,
)
from lockgate.cli.output import console
from lockgate.store.migrate import current

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def _state(ctx: typer.Context) -> CliState:
    state: CliState = ctx.obj
    return state


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema (safe to run repeatedly and concurrently)."""
    lg = _state(ctx).app(migrate=True)
    console.print(f"database at revision {current(lg.store)}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision the database is at."""
    console.print(current(_state(ctx).app().store) or "(empty: run `lockgate db upgrade`)")
