"""``lockgate triggers|schedules|pollers|queues``: what starts runs without a person.

Every group is made the same way, from its kind (:mod:`lockgate.triggers.catalog`):
``create`` and ``update`` take the options the kind's spec makes (:mod:`lockgate.cli.specs`);
``list``, ``show``, ``pause``, ``resume``, ``delete`` and ``deliveries`` come from
:func:`manage`. No ``from __future__ import annotations``: the commands :func:`manage` makes
take their argument's help from a local, which Typer must see evaluated.
"""

import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.context import state_of
from lockgate.cli.output import Output, console, print_json, status_text, table, when
from lockgate.cli.specs import command
from lockgate.errors import ParamsError
from lockgate.records import (
    DeliveryRecord,
    PollerRecord,
    QueueRecord,
    ScheduleRecord,
    TriggerRecord,
)
from lockgate.triggers.catalog import POLLERS, QUEUES, SCHEDULES, WEBHOOKS
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.spec import Kind

OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]


def _enabled(enabled: bool) -> str:
    return "yes" if enabled else "[yellow]paused[/yellow]"


def trigger_row(t: TriggerRecord) -> Sequence[Any]:
    return (
        t.id,
        t.provider,
        f"{t.namespace}/{t.pipeline}",
        ",".join(t.events) or "*",
        ",".join(t.branches) or "*",
        _enabled(t.enabled),
        when(t.created_at),
    )


def schedule_row(s: ScheduleRecord) -> Sequence[Any]:
    every = s.cron if s.cron else f"every {s.interval_seconds:g}s"
    return (
        s.id,
        f"{s.namespace}/{s.pipeline}",
        escape(every),
        s.timezone,
        s.misfire,
        when(s.next_fire_at) if s.enabled else "-",
        _enabled(s.enabled),
    )


def queue_row(q: QueueRecord) -> Sequence[Any]:
    return (
        q.id,
        f"{q.namespace}/{q.pipeline}",
        q.broker,
        escape(str(q.to_dict()["url"])),
        escape(q.source),
        escape((q.last_error or "")[:60]),
        _enabled(q.enabled),
    )


def poller_row(p: PollerRecord) -> Sequence[Any]:
    data = p.to_dict()  # the repository without its password
    return (
        p.id,
        f"{p.namespace}/{p.pipeline}",
        escape(str(data["repository"])),
        ",".join(p.refs),
        f"{p.interval_seconds:g}s",
        escape((p.last_error or "")[:60]),
        _enabled(p.enabled),
    )


def manage(
    group: typer.Typer,
    noun: str,
    client: Callable[[typer.Context], Any],
    columns: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
) -> None:
    """Register ``list``, ``show``, ``pause``, ``resume``, ``delete`` and ``deliveries``."""
    plural = f"{noun}s"

    def shown(record: Any, output: Output, title: str | None = None) -> None:
        show_one(record, output, title, row, columns)

    @group.command("list")
    def list_(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
        found = client(ctx).list()
        if output is Output.json:
            print_json([r.to_dict() for r in found])
            return
        table(plural.capitalize(), columns, [row(r) for r in found])

    list_.__doc__ = f"Every {noun}, paused or not."

    IdArg = Annotated[str, typer.Argument(help=f"The {noun}'s id (see '{plural} list').")]

    @group.command("show")
    def show(ctx: typer.Context, row_id: IdArg, output: OutputOpt = Output.table) -> None:
        shown(client(ctx).get(row_id), output)

    show.__doc__ = f"One {noun}."

    @group.command("pause")
    def pause(ctx: typer.Context, row_id: IdArg, output: OutputOpt = Output.table) -> None:
        shown(client(ctx).pause(row_id), output, f"paused {noun} {row_id}")

    pause.__doc__ = f"Stop a {noun} starting runs until it is resumed (its history stays)."

    @group.command("resume")
    def resume(ctx: typer.Context, row_id: IdArg, output: OutputOpt = Output.table) -> None:
        shown(client(ctx).resume(row_id), output, f"resumed {noun} {row_id}")

    resume.__doc__ = f"Let a paused {noun} start runs again."

    @group.command("delete")
    def delete(ctx: typer.Context, row_id: IdArg) -> None:
        client(ctx).delete(row_id)
        console.print(f"deleted {noun} {row_id} and its deliveries", highlight=False)

    delete.__doc__ = f"Delete a {noun} and the record of what it fired."

    @group.command("deliveries")
    def deliveries(
        ctx: typer.Context,
        row_id: IdArg,
        limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
        output: OutputOpt = Output.table,
    ) -> None:
        found = state_of(ctx).client().deliveries.list(row_id, limit)
        if output is Output.json:
            print_json([d.to_dict() for d in found])
            return
        table(f"{noun} {row_id}", _DELIVERY_COLUMNS, [_delivery_row(d) for d in found])

    deliveries.__doc__ = f"What a {noun} fired, newest first: its outcome and its runs."


_DELIVERY_COLUMNS = ["ID", "KEY", "STATUS", "RUNS", "ATTEMPTS", "RECEIVED", "WHY NOT"]


def _delivery_row(d: DeliveryRecord) -> Sequence[Any]:
    return (
        str(d.id),
        escape(d.key[:40]),
        status_text(d.status),
        ",".join(d.run_ids) or "-",
        str(d.attempts),
        when(d.received_at),
        escape((d.error or "")[:80]),
    )


TRIGGER_COLUMNS = ["ID", "PROVIDER", "PIPELINE", "EVENTS", "BRANCHES", "ENABLED", "CREATED"]
SCHEDULE_COLUMNS = ["ID", "PIPELINE", "WHEN", "TIMEZONE", "MISFIRE", "NEXT", "ENABLED"]
POLLER_COLUMNS = ["ID", "PIPELINE", "REPOSITORY", "REFS", "EVERY", "LAST ERROR", "ENABLED"]
QUEUE_COLUMNS = ["ID", "PIPELINE", "BROKER", "URL", "STREAM", "LAST ERROR", "ENABLED"]


def show_one(
    record: Any, output: Output, title: str | None, row: Any, columns: Sequence[str]
) -> None:
    if output is Output.json:
        print_json(record.to_dict())
    else:
        table(title, columns, [row(record)])


@dataclass(frozen=True)
class Group:
    """A kind's command group: its table, and what ``create`` says of what it made."""

    kind: Kind[Any, Any]
    columns: Sequence[str]
    row: Callable[[Any], Sequence[Any]]
    create_doc: str
    made: Callable[[Any], str]
    app: typer.Typer = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "app", typer.Typer(help=self.kind.help, no_args_is_help=True))

    def client(self, ctx: typer.Context) -> Any:
        return getattr(state_of(ctx).client(), self.kind.service)

    def create(self, ctx: typer.Context, values: dict[str, Any], output: Output) -> None:
        made = self.client(ctx).create(values)
        if output is Output.json:
            print_json(made.to_dict())
        else:
            console.print(self.made(made), highlight=False)

    def update(self, ctx: typer.Context, values: dict[str, Any], output: Output) -> None:
        row_id = values.pop("row_id")
        made = self.client(ctx).update(row_id, values)
        show_one(made, output, f"updated {self.kind.name} {row_id}", self.row, self.columns)

    def install(self) -> typer.Typer:
        """The group's commands: list, show, pause, resume, delete, deliveries, create and
        update (from the kind's spec)."""
        manage(self.app, self.kind.name, self.client, self.columns, self.row)
        spec, noun = self.kind.spec, self.kind.name
        self.app.command("create")(command(spec, True, self.create, self.create_doc))
        doc = f"Change a {noun}: only the options given (lists and params are replaced)."
        self.app.command("update")(command(spec, False, self.update, doc))
        return self.app


def _first_tick(s: ScheduleRecord) -> str:
    return f"created schedule {s.id}; first tick {when(s.next_fire_at)}"


def _queue_made(q: QueueRecord) -> str:
    return (
        f"created queue {q.id}: {q.broker} stream {q.source} "
        f"(dead letters: {q.dead_letter}; match: {json.dumps(q.match)})"
    )


class Webhooks(Group):
    """Webhook triggers: ``create`` makes a secret for a provider that signs, and prints
    the URL (and secret) to give the provider."""

    def create(self, ctx: typer.Context, values: dict[str, Any], output: Output) -> None:
        known = PROVIDERS.get(values.get("provider", ""))
        made_secret = None
        if "secret" not in values and known is not None and known.signed:
            values["secret"] = made_secret = secrets.token_urlsafe(32)
        trigger = self.client(ctx).create(values)
        url_token = trigger.url_token
        path = f"/hooks/{trigger.id}" + (f"?token={url_token}" if url_token else "")
        base = _server(ctx)
        if output is Output.json:
            # The whole URL when the CLI talks to a server (it knows the address), else null.
            shown = {**trigger.to_dict(), "path": path, "url": base + path if base else None}
            shown.pop("url_token", None)
            if made_secret:
                shown["secret"] = made_secret
            print_json(shown)
            return
        where = f"{trigger.namespace}/{trigger.pipeline}"
        console.print(f"created trigger {trigger.id} for {where}", highlight=False)
        console.print(f"  URL:    {base or '<server>'}{path}", highlight=False, markup=False)
        if not base:
            console.print("  (<server>: the address your lockgate server is reached at)")
        if made_secret:
            console.print(f"  secret: {made_secret}", highlight=False, markup=False)
        if made_secret or url_token:
            console.print("  (shown once: only its hash or the provider's copy is kept)")


GROUPS = {
    "triggers": Webhooks(
        WEBHOOKS,
        TRIGGER_COLUMNS,
        trigger_row,
        "Create a webhook trigger; prints the URL (and secret) to give the provider. "
        "Without --secret-env a secret is made and printed once.",
        str,
    ),
    "schedules": Group(
        SCHEDULES,
        SCHEDULE_COLUMNS,
        schedule_row,
        "Create a schedule: each tick starts one run, however many servers run.",
        _first_tick,
    ),
    "pollers": Group(
        POLLERS,
        POLLER_COLUMNS,
        poller_row,
        "Create a poller: the first poll records what is there; each new commit then starts "
        "one run.",
        lambda p: f"created poller {p.id}",
    ),
    "queues": Group(
        QUEUES,
        QUEUE_COLUMNS,
        queue_row,
        "Create a queue trigger: each message added to the stream from now on starts one "
        "run, its params made from ${message.body.*}, ${message.headers.*} and "
        "${message.id} (e.g. -p 'version=${message.body.version}').",
        _queue_made,
    ),
}
triggers_app, schedules_app, pollers_app, queues_app = (g.install() for g in GROUPS.values())


@triggers_app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    trigger_id: Annotated[str, typer.Argument(help="The trigger's id.")],
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="Read the new secret from this environment variable (default: make one)."
        ),
    ] = None,
    overlap: Annotated[
        float,
        typer.Option(min=0, help="Seconds the old secret still verifies (0: it stops now)."),
    ] = 3600.0,
    output: OutputOpt = Output.table,
) -> None:
    """Give a webhook trigger a new secret, printed once; the old one still verifies for
    --overlap seconds, while the provider is switched over."""
    secret = None
    if secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            raise ParamsError([f"--secret-env: environment variable {secret_env} is not set"])
    trigger, new = (
        state_of(ctx)
        .client()
        .webhooks.rotate_secret(trigger_id, secret=secret, overlap_seconds=overlap)
    )
    signed = PROVIDERS[trigger.provider].signed
    if output is Output.json:
        shown = trigger.to_dict()
        shown["new_secret" if signed else "path"] = (
            new if signed else f"/hooks/{trigger.id}?token={new}"
        )
        print_json(shown)
        return
    console.print(f"rotated the secret of trigger {trigger.id}", highlight=False)
    if signed and not secret_env:
        console.print(f"  new secret: {new}", highlight=False, markup=False)
    elif not signed:
        base = _server(ctx) or "<server>"
        console.print(
            f"  URL:    {base}/hooks/{trigger.id}?token={new}", highlight=False, markup=False
        )
    until = "stops now" if overlap == 0 else f"verifies until {when(trigger.previous_until)}"
    console.print(f"  the old one {until}", highlight=False)


@triggers_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    delivery_id: Annotated[int, typer.Argument(help="The delivery's id (see 'deliveries').")],
    output: OutputOpt = Output.table,
) -> None:
    """Process a stored webhook or queue delivery again; it may start a new run."""
    outcome = state_of(ctx).client().deliveries.redeliver(delivery_id)
    if output is Output.json:
        print_json(outcome)
        return
    why = outcome.get("error") or outcome.get("reason")
    runs = ", ".join(outcome.get("run_ids") or []) or "no run"
    console.print(
        f"delivery {delivery_id}: {outcome['status']}; {runs}" + (f" ({why})" if why else ""),
        highlight=False,
        markup=False,
    )


def _server(ctx: typer.Context) -> str | None:
    """The server's address when the CLI talks to one (``--url``), for whole webhook URLs."""
    url = state_of(ctx).url
    return url.rstrip("/") if url else None
