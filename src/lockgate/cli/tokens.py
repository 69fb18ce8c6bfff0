"""``lockgate tokens create|list|revoke``: on the database, or on the server when both
``LOCKGATE_URL`` and ``LOCKGATE_TOKEN`` are set (the first token is made on the database)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from lockgate.cli.context import state_of
from lockgate.cli.output import Output, console, err_console, print_json, table, when

tokens_app = typer.Typer(help="API tokens (bearer tokens with a role).", no_args_is_help=True)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who or what uses the token.")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    subject: Annotated[
        str | None,
        typer.Option(
            help="The person or machine the token acts for (default: --name). Tokens of "
            "one subject are one identity: their approvals count once."
        ),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    tokens = state_of(ctx).tokens(migrate=True)
    record, secret = tokens.create(name, role, subject=subject)
    if output is Output.json:
        print_json({**record.to_dict(), "token": secret})
        return
    # The secret alone on stdout (TOKEN=$(lockgate tokens create ...)); the note on stderr.
    err_console.print(
        f"token {record.id} for {escape(record.identity)} ({role}); store it now, it is not "
        "shown again:",
        highlight=False,
    )
    sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context, output: Annotated[Output, typer.Option("--output", "-o")] = Output.table
) -> None:
    """Tokens (never their secrets)."""
    found = state_of(ctx).tokens().list()
    if output is Output.json:
        print_json([t.to_dict() for t in found])
        return
    rows = [
        (
            t.id,
            t.name,
            t.identity,
            t.role,
            when(t.created_at),
            when(t.last_used_at),
            "revoked" if t.revoked_at else "active",
        )
        for t in found
    ]
    table(None, ["ID", "NAME", "SUBJECT", "ROLE", "CREATED", "LAST USED", "STATE"], rows)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token: it stops working at once."""
    record = state_of(ctx).tokens().revoke(token_id)
    console.print(f"token {record.id} ({escape(record.name)}) revoked")
