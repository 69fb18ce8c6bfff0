"""``lockgate approve``, ``lockgate reject`` and ``lockgate approvals list``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from lockgate.cli.context import CliState, parse_params
from lockgate.cli.output import Output, console, err_console, print_json, table, when
from lockgate.errors import LockgateError

approvals_app = typer.Typer(help="Approval steps waiting for decisions.", no_args_is_help=True)

StepOpt = Annotated[str | None, typer.Option(help="The approval step (default: the waiting one).")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="Why.")]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Decide as this person (default: the OS user); on the database only: through a "
        "server you decide as your token's subject.",
    ),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="A role the decider holds (repeatable); on the database only: through a server, "
        "your token's role.",
    ),
]


def _decide(
    ctx: typer.Context,
    decision: str,
    run_ids: list[str],
    step: str | None,
    comment: str | None,
    person: str | None,
    roles: list[str] | None,
    pairs: list[str] | None,
    output: Output,
) -> None:
    state: CliState = ctx.obj
    answers = state.client(person, roles or ()).decide_many(
        run_ids,
        decision,
        step=step,
        comment=comment,
        input=parse_params(pairs or [], None) or None,
    )
    refused = [a for a in answers if isinstance(a, LockgateError)]
    if len(run_ids) == 1 and refused:
        raise refused[0]  # one run: its error, with its own exit code
    if output is Output.json:
        shown = [
            {"run_id": r, "error": {"code": a.code, "message": a.message}}
            if isinstance(a, LockgateError)
            else a.to_dict()
            for r, a in zip(run_ids, answers, strict=True)
        ]
        print_json(shown[0] if len(run_ids) == 1 else shown)
    else:
        verb = "approved" if decision == "approve" else "rejected"
        for run_id, answer in zip(run_ids, answers, strict=True):
            if isinstance(answer, LockgateError):
                err_console.print(
                    f"[red]refused[/red] run {run_id} ({answer.code}): {escape(answer.message)}",
                    highlight=False,
                )
                continue
            record = answer.decision
            settled = (
                f"; the step is {answer.outcome}" if answer.settled else "; more approvals needed"
            )
            console.print(
                f"{verb} step {escape(record.step)} of run {record.run_id} as "
                f"{escape(record.by)}{settled}",
                highlight=False,
            )
        if len(run_ids) > 1:
            console.print(f"{len(answers) - len(refused)} decided, {len(refused)} refused")
    if refused:
        raise typer.Exit(1)


RunIds = Annotated[
    list[str],
    typer.Argument(help="The runs' ids: one, or many (up to 1,000) decided in one go."),
]


def approve(
    ctx: typer.Context,
    run_ids: RunIds,
    step: StepOpt = None,
    comment: CommentOpt = None,
    person: AsOpt = None,
    role: RoleOpt = None,
    input_pair: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value the step asks for.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Approve runs' waiting approval steps. With many runs, each gets its own answer and
    the exit code is 1 if any was refused."""
    _decide(ctx, "approve", run_ids, step, comment, person, role, input_pair, output)


def reject(
    ctx: typer.Context,
    run_ids: RunIds,
    step: StepOpt = None,
    comment: CommentOpt = None,
    person: AsOpt = None,
    role: RoleOpt = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Reject runs' waiting approval steps: each step fails and its run rolls back."""
    _decide(ctx, "reject", run_ids, step, comment, person, role, None, output)


@approvals_app.command("list")
def list_pending(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Approval steps waiting for decisions, oldest first, with who may decide."""
    state: CliState = ctx.obj
    pending = state.client().approvals(limit=limit)
    if output is Output.json:
        print_json([p.to_dict() for p in pending])
        return
    rows = []
    for p in pending:
        policy = p.policy
        who = [*policy.approvers.users, *(f"role:{r}" for r in policy.approvers.roles)]
        got = sum(1 for d in p.decisions if d.decision == "approve")
        rows.append(
            (
                p.run.id,
                f"{p.run.pipeline}/{p.approval.step}",
                policy.message,
                ", ".join(who) or "anyone",
                f"{got}/{policy.required}",
                p.approval.requested_by or "-",
                when(p.approval.expires_at),
            )
        )
    table(
        None, ["RUN", "STEP", "MESSAGE", "WHO MAY DECIDE", "APPROVED", "REQUESTER", "EXPIRES"], rows
    )
