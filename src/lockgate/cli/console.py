"""``lockgate console-link``: a one-time sign-in link to the web console."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from lockgate.cli.context import state_of, whoami
from lockgate.cli.output import err_console


def console_link(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    subject: Annotated[
        str | None,
        typer.Option(help="Who signs in with it (decisions are recorded as theirs); default: you."),
    ] = None,
    base: Annotated[
        str,
        typer.Option(
            "--base-url",
            envvar="LOCKGATE_URL",
            help="The server's address as the browser reaches it.",
        ),
    ] = "http://127.0.0.1:8080",
) -> None:
    """Print a one-time link that signs someone in to the web console: it works once, for
    LOCKGATE_CONSOLE_LINK_SECONDS (15 minutes by default). Made on the database."""
    state = state_of(ctx)
    who = subject or whoami()
    secret = state.app().acting(whoami()).sessions.make_link(role, who)
    minutes = state.settings.console_link_seconds / 60
    err_console.print(
        f"one-time sign-in link for {escape(who)} ({role}); it works once, within "
        f"{minutes:g} minutes:",
        highlight=False,
    )
    sys.stdout.write(f"{base.rstrip('/')}/sign-in/link/{secret}\n")
