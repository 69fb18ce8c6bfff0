"""``lockgate sessions list|revoke``: web console sessions, on the database, or on the
server when both ``LOCKGATE_URL`` and ``LOCKGATE_TOKEN`` (an admin's) are set."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from lockgate.cli.context import state_of
from lockgate.cli.output import Output, console, print_json, table, when

sessions_app = typer.Typer(
    help="Web console sessions: who is signed in, and ending a sign-in now.",
    no_args_is_help=True,
)


@sessions_app.command("list")
def sessions_list(
    ctx: typer.Context, output: Annotated[Output, typer.Option("--output", "-o")] = Output.table
) -> None:
    """Live console sessions, newest first (never their cookies)."""
    found = state_of(ctx).sessions().list()
    if output is Output.json:
        print_json([s.public() for s in found])
        return
    rows = [
        (
            s.ref,
            s.subject,
            s.role,
            f"token {s.token_id}" if s.token_id else "link",
            when(s.created_at),
            when(s.last_seen_at),
            when(s.expires_at),
        )
        for s in found
    ]
    headers = ["REF", "SUBJECT", "ROLE", "SIGNED IN WITH", "SINCE", "LAST SEEN", "EXPIRES"]
    table(None, headers, rows)


@sessions_app.command("revoke")
def sessions_revoke(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The session's ref (from `sessions list`).")],
) -> None:
    """End a console session now: its cookie stops working at once (sign-in links too)."""
    record = state_of(ctx).sessions().revoke(ref)
    console.print(f"session {record.ref} of {escape(record.subject)} ended")
