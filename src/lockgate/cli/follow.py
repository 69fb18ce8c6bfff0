"""Following a run from the command line until it ends: a live view of its steps, and
what it waits for whenever it parks."""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lockgate.cli.output import (
    Output,
    console,
    duration,
    err_console,
    print_json,
    status_text,
    when,
)
from lockgate.core.statuses import RunStatus
from lockgate.errors import LockgateError


def render_run(view: Any) -> Table:
    """A run's steps as a table titled with the run's status."""
    run = view.run
    title = Text.assemble(
        (f"{run.namespace}/{run.pipeline} ", "bold"), (run.id + " ", "dim"), status_text(run.status)
    )
    if run.noop:
        title.append(" (dry run)", style="yellow")
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("STEP", "STATUS", "ATTEMPT", "TOOK", "ERROR"):
        t.add_column(col)
    for s in view.steps:
        t.add_row(
            s.name,
            status_text(s.status),
            str(s.attempt or "-"),
            duration(s.started_at, s.finished_at),
            (s.error or "")[:120],
        )
    return t


def follow_run(
    app: Any, run_id: str, output: Output, timeout: float | None, *, here: bool = False
) -> str:
    """Show a run's progress until it finishes, saying what it waits for whenever it parks;
    returns its final status. ``here``: this command's own worker drives the run (nothing
    else may, once it ends)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    told: set[tuple[str | None, int]] = set()
    if output is Output.json:
        while not RunStatus((view := app.get_run(run_id)).run.status).terminal:
            _tell_waiting(app, view, told, err_console)
            _check_deadline(deadline, view, timeout, here)
            time.sleep(0.05)
        print_json(view.to_dict())
        return str(view.run.status)
    view = app.get_run(run_id)
    with Live(render_run(view), console=console, refresh_per_second=10) as live:
        while not RunStatus(view.run.status).terminal:
            _tell_waiting(app, view, told, live.console)
            _check_deadline(deadline, view, timeout, here)
            time.sleep(0.05)
            view = app.get_run(run_id)
            live.update(render_run(view))
    if not console.is_terminal:
        console.line()  # piped, the live view's last frame ends without one
    if view.run.error:
        console.print(f"[red]error:[/red] {escape(view.run.error)}", highlight=False)
    return str(view.run.status)


def waiting_note(app: Any, view: Any) -> str | None:
    """What a parked run waits for, and the command that moves it on; ``None`` if it is
    not parked."""
    run = view.run
    if run.status != RunStatus.WAITING:
        return None
    step = next((s for s in view.steps if s.status == "WAITING"), None)
    if step is None:
        return None
    if step.error is not None:  # failed for good, and asks (on_failure: ask)
        return (
            f"run {run.id} waits: step {step.name!r} failed ({step.error[:200]}) and asks "
            f"what next: lockgate runs resolve {run.id} retry|skip|rollback"
        )
    pending = app.approval(run.id, step.name)
    if pending is not None and pending.approval.outcome is None:
        policy = pending.policy
        who = [f"role {r}" for r in policy.approvers.roles]
        who += [f"user {u}" for u in policy.approvers.users]
        given = sum(1 for d in pending.decisions if d.decision == "approve")
        message = f": {policy.message}" if policy.message else ""
        return (
            f"run {run.id} waits at approval {step.name!r}{message}; "
            f"{given} of {policy.required} approval(s), decided by "
            f"{', '.join(who) or 'anyone who may approve'}: lockgate approve {run.id} "
            f"(or lockgate reject {run.id})"
        )
    if step.wait_until is not None:
        return f"run {run.id} waits: step {step.name!r} sleeps until {when(step.wait_until)}"
    return None


def _tell_waiting(app: Any, view: Any, told: set[tuple[str | None, int]], out: Any) -> None:
    """Say once per parked step (and attempt) what the run waits for."""
    step = next((s for s in view.steps if s.status == "WAITING"), None)
    key = (step.name, step.attempt) if step is not None else (None, 0)
    if view.run.status != RunStatus.WAITING or key in told:
        return
    note = waiting_note(app, view)
    if note is not None:
        told.add(key)
        out.print(escape(note), highlight=False, soft_wrap=True)


def _check_deadline(deadline: float | None, view: Any, timeout: float | None, here: bool) -> None:
    if deadline is None or time.monotonic() <= deadline:
        return
    run = view.run
    what = f"run {run.id} is still {run.status} after {timeout:g}s"
    if here:
        raise LockgateError(
            f"{what}; nothing drives it once this command ends: to continue it, start "
            "`lockgate worker --pipelines ...` (or `lockgate server`) on this database with "
            f"that pipeline, or stop it: lockgate runs cancel {run.id}"
        )
    raise LockgateError(
        f"{what}; a server or worker serving {run.namespace}/{run.pipeline} continues it "
        f"(lockgate runs show {run.id})"
    )
