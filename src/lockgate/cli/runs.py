"""``lockgate runs``: list, show, logs, cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.context import (
    BackgroundWorker,
    ExamplesOpt,
    PipelinesOpt,
    parse_params,
    pipelines_from,
    state_of,
)
from lockgate.cli.follow import follow_run, render_run
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
from lockgate.core.pipeline import Pipeline, split_name
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
    run = state_of(ctx).client().cancel_run(run_id)
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
    state = state_of(ctx)
    # On the database, the OS user acts as an admin (it holds the database itself).
    client = state.client() if state.url else state.client(roles=["admin"])
    result = client.resolve(run_id, action, comment=comment)
    if output is Output.json:
        print_json(
            {**result.decision.to_dict(), "settled": result.settled, "outcome": result.outcome}
        )
    else:
        console.print(f"run {run_id}: {action} (by {result.decision.by})", highlight=False)


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
    run = state_of(ctx).client().rerun(run_id, latest=latest)
    if output is Output.json:
        print_json(run.to_dict())
    else:
        console.print(f"started run {run.id}, a re-run of {run_id}", highlight=False)


def _params_schema(lg: Any, local: list[Pipeline], name: str) -> dict[str, Any] | None:
    """The params schema of the pipeline ``name`` names (``None``: it has none, or it is
    not known here; starting it says which)."""
    namespace, short = split_name(name, "default")
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
        state.app(migrate=True).register(*local)
    # Else the pipeline must be registered in the database (by a server or worker).
    lg = state.client()
    schema = _params_schema(lg, local, name)
    params = parse_params(param or [], params_file, schema, typed=True)
    bag = parse_params(context, None) if context else None
    try:
        record = lg.start_run(
            name,
            params,
            noop=dry_run,
            idempotency_key=idempotency_key,
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
        with BackgroundWorker(state.app()):
            status = follow_run(lg, record.id, output, timeout, here=True)
    else:
        status = follow_run(lg, record.id, output, timeout)
    raise typer.Exit(0 if status == "SUCCEEDED" else 1)
