"""``lockgate schedules`` and ``lockgate pollers``: runs on a timetable, or on new commits.

``list``, ``show``, ``pause``, ``resume``, ``delete`` and ``deliveries`` come from
:func:`lockgate.cli.triggers.manage`, as for webhook triggers.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.cli.context import parse_params, state_of, whoami
from lockgate.cli.output import Output, console, print_json, when
from lockgate.cli.triggers import (
    POLLER_COLUMNS,
    SCHEDULE_COLUMNS,
    NamespaceOpt,
    OutputOpt,
    ParamOpt,
    ParamsFileOpt,
    manage,
    params_or_none,
    poller_row,
    schedule_row,
    show_one,
)

schedules_app = typer.Typer(
    help="Schedules: a cron expression or an interval starts runs.", no_args_is_help=True
)
pollers_app = typer.Typer(
    help="Pollers: a new commit in a polled git repository starts a run.", no_args_is_help=True
)

manage(
    schedules_app,
    "schedule",
    lambda ctx: state_of(ctx).client().schedules,
    SCHEDULE_COLUMNS,
    schedule_row,
)
manage(
    pollers_app,
    "poller",
    lambda ctx: state_of(ctx).client().pollers,
    POLLER_COLUMNS,
    poller_row,
)


@schedules_app.command("create")
def create_schedule(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="The pipeline each tick starts.")],
    cron: Annotated[
        str | None, typer.Option(help="A 5-field cron expression (6 fields: seconds first).")
    ] = None,
    every: Annotated[float | None, typer.Option(min=1, help="Or: every this many seconds.")] = None,
    timezone: Annotated[str, typer.Option(help="The IANA time zone of --cron.")] = "UTC",
    misfire: Annotated[
        str, typer.Option(help="A tick missed while down: skip, or run_once.")
    ] = "skip",
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    namespace: NamespaceOpt = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Create a schedule: each tick starts one run, however many servers run."""
    made = (
        state_of(ctx)
        .client()
        .schedules.create(
            pipeline,
            cron=cron,
            interval_seconds=every,
            timezone=timezone,
            misfire=misfire,
            namespace=namespace,
            params=parse_params(param or [], params_file),
            actor=whoami(),
        )
    )
    if output is Output.json:
        print_json(made.to_dict())
        return
    console.print(
        f"created schedule {made.id}; first tick {when(made.next_fire_at)}", highlight=False
    )


@schedules_app.command("update")
def update_schedule(
    ctx: typer.Context,
    schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
    pipeline: Annotated[str | None, typer.Option(help="Start this pipeline instead.")] = None,
    cron: Annotated[str | None, typer.Option(help="A new cron expression.")] = None,
    every: Annotated[float | None, typer.Option(min=1, help="Or: every this many seconds.")] = None,
    timezone: Annotated[str | None, typer.Option(help="The IANA time zone of --cron.")] = None,
    misfire: Annotated[str | None, typer.Option(help="skip or run_once.")] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change a schedule (options left out stay as they are); a new timing starts now."""
    made = (
        state_of(ctx)
        .client()
        .schedules.update(
            schedule_id,
            pipeline=pipeline,
            cron=cron,
            interval_seconds=every,
            timezone=timezone,
            misfire=misfire,
            params=params_or_none(param, params_file),
            actor=whoami(),
        )
    )
    show_one(made, output, f"updated schedule {schedule_id}", schedule_row, SCHEDULE_COLUMNS)


@pollers_app.command("update")
def update_poller(
    ctx: typer.Context,
    poller_id: Annotated[str, typer.Argument(help="The poller's id.")],
    pipeline: Annotated[str | None, typer.Option(help="Start this pipeline instead.")] = None,
    repository: Annotated[
        str | None, typer.Option(help="Poll this repository instead (starts over).")
    ] = None,
    ref: Annotated[list[str] | None, typer.Option(help="Refs to track (repeatable).")] = None,
    every: Annotated[
        float | None, typer.Option(min=5, help="Poll every this many seconds.")
    ] = None,
    credentials: Annotated[
        str | None, typer.Option(help='The name of a secret holding user:password ("": none).')
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change a poller (options left out stay as they are); a new repository starts over
    with a baseline poll."""
    made = (
        state_of(ctx)
        .client()
        .pollers.update(
            poller_id,
            pipeline=pipeline,
            repository=repository,
            refs=ref,
            interval_seconds=every,
            params=params_or_none(param, params_file),
            actor=whoami(),
            credentials=credentials,
        )
    )
    show_one(made, output, f"updated poller {poller_id}", poller_row, POLLER_COLUMNS)


@pollers_app.command("create")
def create_poller(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="The pipeline a new commit starts.")],
    repository: Annotated[str, typer.Argument(help="A git URL or path to poll.")],
    ref: Annotated[
        list[str] | None,
        typer.Option(help="Refs to track, globs (repeatable; default refs/heads/*)."),
    ] = None,
    every: Annotated[float, typer.Option(min=5, help="Poll every this many seconds.")] = 60.0,
    credentials: Annotated[
        str | None,
        typer.Option(help="The name of a secret (LOCKGATE_SECRET_<NAME>) holding user:password."),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    namespace: NamespaceOpt = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Create a poller: the first poll records what is there; each new commit then starts
    one run."""
    made = (
        state_of(ctx)
        .client()
        .pollers.create(
            pipeline,
            repository,
            refs=ref or ["refs/heads/*"],
            interval_seconds=every,
            namespace=namespace,
            params=parse_params(param or [], params_file),
            actor=whoami(),
            credentials=credentials,
        )
    )
    if output is Output.json:
        print_json(made.to_dict())
        return
    console.print(f"created poller {made.id}", highlight=False)
