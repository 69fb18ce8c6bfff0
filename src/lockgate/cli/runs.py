"""``lockgate runs``: list, show, logs, cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lockgate.cli.context import (
    BackgroundWorker,
    ExamplesOpt,
    PipelinesOpt,
    parse_params,
    pipelines_from,
    state_of,
    whoami,
)
from lockgate.cli.output import (
    Output,
    console,
    duration,
    err_console,
    print_json,
    print_json_line,
    printable,
    status_text,
    table,
    when,
)
from lockgate.core.pipeline import Pipeline
from lockgate.core.statuses import RunStatus
from lockgate.errors import LockgateError, PipelineNotFound

runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)

OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """List runs, newest first."""
    if status is not None and status.upper() not in RunStatus.__members__:
        raise typer.BadParameter(
            f"unknown status {status!r}; one of {', '.join(RunStatus)}", param_hint="--status"
        )
    runs = (
        state_of(ctx)
        .client()
        .list_runs(status=status.upper() if status else None, pipeline=pipeline, limit=limit)
    )
    if output is Output.json:
        print_json([r.to_dict() for r in runs])
        return
    rows = [
        (
            r.id,
            f"{r.namespace}/{r.pipeline}",
            status_text(r.status),
            r.current_step or "-",
            when(r.created_at),
            duration(r.created_at, r.finished_at),
            r.flag or r.error or "",
        )
        for r in runs
    ]
    table(None, ["ID", "PIPELINE", "STATUS", "STEP", "CREATED", "TOOK", "NOTE"], rows)


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


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    tracebacks: Annotated[
        bool, typer.Option("--tracebacks", help="Print each recorded error's traceback.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Show a run: its steps, every attempt of each, its errors (the cause first) and its
    events."""
    app = state_of(ctx).client()
    view = app.get_run(run_id)
    events = app.events(run_id)
    if output is Output.json:
        print_json({**view.to_dict(), "events": [e.to_dict() for e in events]})
        return
    console.print(render_run(view))
    if view.run.error:
        console.print(f"[red]error:[/red] {escape(view.run.error)}", highlight=False)
    if view.run.flag:
        console.print(f"[yellow]flag:[/yellow] {escape(view.run.flag)}", highlight=False)
    if view.run.trace_context:  # "00-<trace id>-<span id>-<flags>": what a trace viewer finds
        trace_id = view.run.trace_context.split("-")[1]
        console.print(f"trace: {trace_id}", highlight=False)
    attempts = [
        (
            a.step,
            str(a.attempt),
            a.outcome,
            a.worker or "-",
            when(a.started_at),
            duration(a.started_at, a.ended_at),
        )
        for a in view.attempts
    ]
    table("attempts", ["STEP", "ATTEMPT", "ENDED", "WORKER", "STARTED", "TOOK"], attempts)
    _print_errors(view.errors, tracebacks)
    rows = [(when(e.at), e.step or "(run)", status_text(e.status), e.message or "") for e in events]
    table("events", ["AT", "STEP", "STATUS", "MESSAGE"], rows)


def _print_errors(errors: list[Any], tracebacks: bool) -> None:
    """The run's recorded errors, oldest (the cause) first."""
    if not errors:
        return
    rows = [
        (when(e.at), e.step or "(run)", str(e.attempt or "-"), e.kind.rpartition(".")[2], e.message)
        for e in errors
    ]
    table("errors", ["AT", "STEP", "ATTEMPT", "KIND", "MESSAGE"], rows)
    if tracebacks:
        for e in errors:
            console.print(f"[bold]{escape(e.step or '(run)')}[/bold] {escape(e.kind)}")
            console.print(escape(e.traceback or "(no traceback)"), highlight=False, markup=False)


@runs_app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: Annotated[str | None, typer.Option(help="Only this step's log.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Print a run's step logs (``-f`` follows them live; over REST as server-sent events).
    ``--output json`` prints JSON lines: one object per log line."""
    client = state_of(ctx).client()
    for line in _lines(client, run_id, step, follow):
        if output is Output.json:
            print_json_line(line.to_dict())
        else:
            console.print(
                f"[dim]{when(line.at)}[/dim] [bold]{escape(printable(line.step))}[/bold] "
                f"{line.level.upper():7} {escape(printable(line.message))}",
                highlight=False,
            )


def _lines(client: Any, run_id: str, step: str | None, follow: bool) -> Iterator[Any]:
    """A run's log lines; with ``follow``, until the run has ended and every line is out."""
    client.get_run(run_id)  # an unknown run is an error, not an empty log
    if follow and hasattr(client, "stream_logs"):
        yield from client.stream_logs(run_id, step)
        return
    after = 0
    while True:
        lines = client.logs(run_id, step, after)
        yield from lines
        if lines:
            after = lines[-1].id
            continue
        if not follow:
            return
        if RunStatus(client.get_run(run_id).run.status).terminal:
            if not client.logs(run_id, step, after):
                return
            continue
        time.sleep(0.2)


@runs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    output: OutputOpt = Output.table,
) -> None:
    """Stop a run's current step and roll it back."""
    run = state_of(ctx).client().cancel_run(run_id, by=whoami())
    if output is Output.json:
        print_json(run.to_dict())
    else:
        console.print(f"cancel requested for run {run.id} (was {run.status})")


@runs_app.command("resolve")
def resolve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run whose failed step waits.")],
    action: Annotated[str, typer.Argument(help="retry, skip (if the step allows) or rollback.")],
    comment: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Decide what becomes of a step that failed for good and waits (on_failure: ask): run
    it again, go on without it, or roll the run back."""
    who = whoami()
    result = (
        state_of(ctx).client().resolve(run_id, action, by=who, roles=["admin"], comment=comment)
    )
    if output is Output.json:
        print_json(
            {**result.decision.to_dict(), "settled": result.settled, "outcome": result.outcome}
        )
    else:
        console.print(f"run {run_id}: {action} (by {who})", highlight=False)


@runs_app.command("rerun")
def rerun(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The finished run to run again.")],
    latest: Annotated[
        bool,
        typer.Option(help="Run the pipeline's newest version (default: the version it ran)."),
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Start a new run with a finished run's params; the new run records what it re-runs."""
    run = state_of(ctx).client().rerun(run_id, latest=latest, requested_by=whoami(), actor=whoami())
    if output is Output.json:
        print_json(run.to_dict())
    else:
        console.print(f"started run {run.id}, a re-run of {run_id}", highlight=False)


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


def _params_schema(lg: Any, local: list[Pipeline], name: str) -> dict[str, Any] | None:
    """The params schema of the pipeline ``name`` names (``None``: it has none, or it is
    not known here; starting it says which)."""
    namespace, short = name.split("/", 1) if "/" in name else ("default", name)
    for pipeline in local:
        if (pipeline.namespace, pipeline.name) == (namespace, short):
            return pipeline.params_schema()
    try:
        versions = [p for p in lg.pipeline_versions(short) if p.namespace == namespace]
    except LockgateError:
        return None
    return versions[0].definition.get("params") if versions else None


def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, or namespace/name.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="key=value, read by the param's declared type: text for a string param "
            "(version=1.0 stays '1.0'), JSON for number, integer, boolean, array and object "
            "params; key:=<json> is always JSON.",
        ),
    ] = None,
    params_file: Annotated[Path | None, typer.Option(help="JSON object of params.")] = None,
    context: Annotated[
        list[str] | None,
        typer.Option(help="key=value: a first value of the run's context bag (repeatable)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the run ends.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan only: steps see ctx.noop.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Start at most once per key.")] = None,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Start a run. With --pipelines/--examples it also runs it here; else a server does."""
    state = state_of(ctx)
    local = pipelines_from(pipelines or [], examples, state.settings)
    lg: Any
    if local:
        lg = state.app(migrate=True)
        lg.register(*local)
    else:  # the pipeline must be registered in the database (by a server or worker)
        lg = state.client() if state.url else state.app()
    schema = _params_schema(lg, local, name)
    params = parse_params(param or [], params_file, schema, typed=True)
    me = whoami()
    bag = parse_params(context, None) if context else None
    try:
        record = lg.start_run(
            name,
            params,
            noop=dry_run,
            idempotency_key=idempotency_key,
            requested_by=me,
            actor=me,
            context=bag,
        )
    except PipelineNotFound as exc:
        if state.url:
            raise
        # Here, on the database itself, say which one: it may not be the one meant.
        raise PipelineNotFound(f"{exc.message} (database {lg.store.display_url})") from None
    started = f"started run {record.id} of {record.namespace}/{record.pipeline}"
    if not wait and not local:
        if output is Output.json:
            print_json(record.to_dict())
        else:
            console.print(started, highlight=False)
        return
    # Said at once (on stderr beside JSON), before the run has done anything.
    (err_console if output is Output.json else console).print(started, highlight=False)
    if local:
        with BackgroundWorker(lg):
            status = follow_run(lg, record.id, output, timeout, here=True)
    else:
        status = follow_run(lg, record.id, output, timeout)
    raise typer.Exit(0 if status == "SUCCEEDED" else 1)
