"""``lockgate approve``, ``lockgate reject`` and ``lockgate approvals list``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from lockgate.cli.context import CliState, parse_params, whoami
from lockgate.cli.output import Output, console, print_json, table, when

approvals_app = typer.Typer(help="Approval steps waiting for decisions.", no_args_is_help=True)

StepOpt = Annotated[str | None, typer.Option(help="The approval step (default: the waiting one).")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="Why.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Decide as this person (default: the OS user)."),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option("--role", help="A role the decider holds (repeatable)."),
]


def _decide(
    ctx: typer.Context,
    decision: str,
    run_id: str,
    step: str | None,
    comment: str | None,
    person: str | None,
    roles: list[str] | None,
    pairs: list[str] | None,
    output: Output,
) -> None:
    state: CliState = ctx.obj
    result = state.client().decide(
        run_id,
        decision,
        by=person or whoami(),
        roles=roles or [],
        step=step,
        comment=comment,
        input=parse_params(pairs or [], None) or None,
    )
    if output is Output.json:
        print_json(result.to_dict())
        return
    record = result.decision
    verb = "approved" if decision == "approve" else "rejected"
    settled = f"; the step is {result.outcome}" if result.settled else "; more approvals needed"
    console.print(
        f"{verb} step {escape(record.step)} of run {record.run_id} as {escape(record.by)}" + settled
    )


def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: StepOpt = None,
    comment: CommentOpt = None,
    person: AsOpt = None,
    role: RoleOpt = None,
    input_pair: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value the step asks for.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Approve a run's waiting approval step."""
    _decide(ctx, "approve", run_id, step, comment, person, role, input_pair, output)


def reject(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: StepOpt = None,
    comment: CommentOpt = None,
    person: AsOpt = None,
    role: RoleOpt = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Reject a run's waiting approval step: the step fails and the run rolls back."""
    _decide(ctx, "reject", run_id, step, comment, person, role, None, output)


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
