"""``lockgate queues``: messages from a broker start runs.

``list``, ``show``, ``pause``, ``resume``, ``delete`` and ``deliveries`` come from
:func:`lockgate.cli.triggers.manage`, as for webhook triggers.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lockgate.cli.context import parse_params, state_of, whoami
from lockgate.cli.output import Output, console, print_json
from lockgate.cli.triggers import (
    QUEUE_COLUMNS,
    NamespaceOpt,
    OutputOpt,
    ParamOpt,
    ParamsFileOpt,
    manage,
    queue_row,
    show_one,
)
from lockgate.errors import ParamsError

queues_app = typer.Typer(
    help="Queue triggers: each message in a Redis stream or a RabbitMQ queue starts a run.",
    no_args_is_help=True,
)

manage(queues_app, "queue", lambda ctx: state_of(ctx).client().queues, QUEUE_COLUMNS, queue_row)


def _match(pairs: list[str]) -> dict[str, list[str]]:
    """``path=glob`` pairs (repeatable per path) as the trigger's match filters."""
    found: dict[str, list[str]] = {}
    problems = []
    for pair in pairs:
        path, sep, glob = pair.partition("=")
        if not sep or not path or not glob:
            problems.append(f"--match {pair!r}: path=glob, e.g. headers.env=prod")
            continue
        found.setdefault(path, []).append(glob)
    if problems:
        raise ParamsError(problems)
    return found


@queues_app.command("create")
def create_queue(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="The pipeline a message starts.")],
    url: Annotated[str, typer.Argument(help="The broker, e.g. redis://queue.internal:6379/0.")],
    stream: Annotated[str, typer.Argument(help="The stream (Redis) or queue (RabbitMQ) to read.")],
    broker: Annotated[str, typer.Option(help="The kind of broker.")] = "redis",
    group: Annotated[str, typer.Option(help="The consumer group servers read in.")] = "lockgate",
    dead_letter: Annotated[
        str | None,
        typer.Option(help="Where messages that cannot start a run go (default: STREAM.dead)."),
    ] = None,
    match: Annotated[
        list[str] | None,
        typer.Option(help="path=glob a message must match (repeatable), e.g. headers.env=prod."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Messages taken and committed together.")
    ] = 100,
    claim_after: Annotated[
        float, typer.Option(min=1, help="Seconds before a dead consumer's messages move.")
    ] = 30.0,
    credentials: Annotated[
        str | None,
        typer.Option(help="The name of a secret (LOCKGATE_SECRET_<NAME>) holding the password."),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    namespace: NamespaceOpt = "default",
    output: OutputOpt = Output.table,
) -> None:
    """Create a queue trigger: each message added to STREAM from now on starts one run, its
    params made from ``${message.body.*}``, ``${message.headers.*}`` and ``${message.id}``
    (e.g. -p 'version=${message.body.version}')."""
    made = (
        state_of(ctx)
        .client()
        .queues.create(
            pipeline,
            broker,
            url,
            stream,
            dead_letter=dead_letter,
            consumer_group=group,
            match=_match(match or []),
            params=parse_params(param or [], params_file),
            batch_size=batch_size,
            claim_after=claim_after,
            namespace=namespace,
            credentials=credentials,
            actor=whoami(),
        )
    )
    if output is Output.json:
        print_json(made.to_dict())
        return
    console.print(
        f"created queue {made.id}: {made.broker} stream {made.source} "
        f"(dead letters: {made.dead_letter}; match: {json.dumps(made.match)})",
        highlight=False,
    )


@queues_app.command("update")
def update_queue(
    ctx: typer.Context,
    queue_id: Annotated[str, typer.Argument(help="The queue trigger's id.")],
    pipeline: Annotated[str | None, typer.Option(help="Start this pipeline instead.")] = None,
    url: Annotated[str | None, typer.Option(help="Another broker URL.")] = None,
    stream: Annotated[str | None, typer.Option(help="Read another stream.")] = None,
    group: Annotated[str | None, typer.Option(help="Another consumer group.")] = None,
    dead_letter: Annotated[str | None, typer.Option(help="Another dead-letter stream.")] = None,
    match: Annotated[
        list[str] | None, typer.Option(help="New path=glob filters (replace the old ones).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    claim_after: Annotated[float | None, typer.Option(min=1)] = None,
    credentials: Annotated[
        str | None, typer.Option(help='Another secret\'s name ("" drops them).')
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    namespace: Annotated[str | None, typer.Option(help="Another namespace.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change a queue trigger: only what is given (running consumers follow within seconds)."""
    params = parse_params(param or [], params_file) if (param or params_file) else None
    made = (
        state_of(ctx)
        .client()
        .queues.update(
            queue_id,
            pipeline=pipeline,
            namespace=namespace,
            url=url,
            source=stream,
            dead_letter=dead_letter,
            consumer_group=group,
            match=None if match is None else _match(match),
            params=params,
            batch_size=batch_size,
            claim_after=claim_after,
            credentials=credentials,
            actor=whoami(),
        )
    )
    show_one(made, output, f"updated queue {queue_id}", queue_row, QUEUE_COLUMNS)
