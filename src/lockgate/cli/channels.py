"""``lockgate channels``: push content, and look at stages, manifests and deployments."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.context import (
    BackgroundWorker,
    ExamplesOpt,
    PipelinesOpt,
    definitions_from,
    state_of,
)
from lockgate.cli.follow import follow_run
from lockgate.cli.output import (
    Output,
    console,
    err_console,
    print_json,
    status_text,
    table,
    when,
)
from lockgate.client import ChannelsClient
from lockgate.errors import ChannelNotFound, ParamsError

channels_app = typer.Typer(
    help="Channels: push tenants' content; promote manifests through stages.",
    no_args_is_help=True,
)

OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]
ChannelArg = Annotated[str, typer.Argument(help="The channel's name.")]


def _channels(ctx: typer.Context) -> ChannelsClient:
    return state_of(ctx).client().channels


def _content(content: str | None, content_file: Path | None) -> Any:
    if (content is None) == (content_file is None):
        raise ParamsError(["content: give exactly one of --content and --content-file"])
    try:
        text = content if content is not None else content_file.read_text()  # type: ignore[union-attr]
        return json.loads(text)
    except OSError as exc:
        raise ParamsError([f"--content-file: {exc.strerror}: {content_file}"]) from exc
    except json.JSONDecodeError as exc:
        where = "--content" if content is not None else str(content_file)
        raise ParamsError([f"{where}: not JSON: {exc.msg} at line {exc.lineno}"]) from exc


@channels_app.command("push")
def push(
    ctx: typer.Context,
    channel: ChannelArg,
    tenant: Annotated[str, typer.Option(help="Who is pushing (the tenant's name).")],
    content: Annotated[str | None, typer.Option(help="The content, as JSON.")] = None,
    content_file: Annotated[
        Path | None, typer.Option(help="A file holding the content as JSON.")
    ] = None,
    command: Annotated[
        str | None, typer.Option(help="What the merge should do (the channel's first command).")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Push at most once per key.")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the deployment ends.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Push a tenant's content: queues a deployment that merges it and promotes the new
    manifest through the channel's stages (one deployment at a time, in push order)."""
    state = state_of(ctx)
    data = _content(content, content_file)
    local = definitions_from(pipelines or [], examples, state.settings)
    lg: Any
    if local[0] or local[1]:
        lg = state.app(migrate=True)
        lg.register(*local[0])
        lg.channels.register(*local[1])
    elif not state.url:
        state.app(migrate=True)
    lg = state.client()
    try:
        d = lg.channels.push(
            channel,
            tenant,
            data,
            command=command,
            idempotency_key=idempotency_key,
        )
    except ChannelNotFound as exc:
        if state.url or local[1]:
            raise
        raise ChannelNotFound(
            f"{exc.message}; load its definition with --pipelines (or --examples), "
            "or push through a server with LOCKGATE_URL"
        ) from exc
    if output is Output.json and not wait:
        print_json(d.to_dict())
        return
    if not wait:
        console.print(
            f"queued deployment {d.id} (#{d.seq}) of channel {d.channel}; run {d.run_id}",
            highlight=False,
        )
        return
    if local[1]:
        with BackgroundWorker(state.app()):
            status = follow_run(lg, d.run_id, output, timeout, here=True)
    else:
        status = follow_run(lg, d.run_id, output, timeout)
    raise typer.Exit(0 if status == "SUCCEEDED" else 1)


@channels_app.command("list")
def list_channels(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Every channel registered in the database (by any server or worker)."""
    found = _channels(ctx).registered()
    if output is Output.json:
        print_json([c.to_dict() for c in found])
        return
    rows = [
        (
            c.name,
            "-" if c.head_version is None else str(c.head_version),
            str(c.last_seq),
            c.active_deployment or "",
            "yes" if c.public_read else "no",
            when(c.updated_at),
        )
        for c in found
    ]
    headers = ["CHANNEL", "HEAD", "PUSHES", "DEPLOYING", "PUBLIC READ", "UPDATED"]
    table(None, headers, rows)


@channels_app.command("stages")
def stages(ctx: typer.Context, channel: ChannelArg, output: OutputOpt = Output.table) -> None:
    """Each stage and the manifest version it serves."""
    found = _channels(ctx).stages(channel)
    if output is Output.json:
        print_json([s.to_dict() for s in found])
        return
    rows = [
        (
            s.stage,
            "-" if s.version is None else str(s.version),
            (s.hash or "")[:12],
            s.deployment_id or "",
            when(s.flipped_at),
        )
        for s in found
    ]
    table(channel, ["STAGE", "VERSION", "HASH", "DEPLOYMENT", "FLIPPED"], rows)


@channels_app.command("manifest")
def manifest(
    ctx: typer.Context,
    channel: ChannelArg,
    stage: Annotated[str | None, typer.Argument(help="The stage whose manifest to print.")] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Print this version instead of a stage's.")
    ] = None,
) -> None:
    """Print the manifest a stage serves (or one version) as JSON."""
    client = _channels(ctx)
    if (stage is None) == (version is None):
        raise ParamsError(["give a STAGE or --version, not both"])
    if version is not None:
        print_json(json.loads(client.manifest(channel, version).body))
    else:
        print_json(client.stage_manifest(channel, stage or "").data())


@channels_app.command("history")
def history(
    ctx: typer.Context,
    channel: ChannelArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """Manifest versions, newest first, with the parent each was merged onto."""
    found = _channels(ctx).history(channel, limit=limit)
    if output is Output.json:
        print_json([{k: v for k, v in m.to_dict().items() if k != "body"} for m in found])
        return
    rows = [
        (
            str(m.version),
            "-" if m.parent is None else str(m.parent),
            m.hash[:12],
            m.deployment_id,
            when(m.created_at),
        )
        for m in found
    ]
    table(channel, ["VERSION", "PARENT", "HASH", "DEPLOYMENT", "CREATED"], rows)


@channels_app.command("deployments")
def deployments(
    ctx: typer.Context,
    channel: ChannelArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """Deployments, newest first: who pushed, which manifest, how it went."""
    found = _channels(ctx).deployments(channel, limit=limit)
    if output is Output.json:
        print_json([d.to_dict() for d in found])
        return
    rows = [
        (
            str(d.seq),
            d.id,
            d.tenant,
            d.command,
            status_text(d.state),
            "-" if d.manifest_version is None else str(d.manifest_version),
            when(d.created_at),
            escape((d.error or "")[:80]),
        )
        for d in found
    ]
    table(
        channel,
        ["#", "DEPLOYMENT", "TENANT", "COMMAND", "STATE", "MANIFEST", "PUSHED", "ERROR"],
        rows,
    )


TenantOpt = Annotated[str, typer.Option(help="The tenant the token pushes for.")]


@channels_app.command("push-token")
def push_token(ctx: typer.Context, channel: ChannelArg, tenant: TenantOpt) -> None:
    """Make a tenant's push token (it replaces the tenant's earlier one). It pushes that
    tenant's content to this channel and nothing else; printed once, stored hashed."""
    token = _channels(ctx).create_push_token(channel, tenant)
    err_console.print(
        f"push token for tenant {escape(tenant)} on {escape(channel)}; store it now, it is "
        "not shown again:",
        highlight=False,
    )
    sys.stdout.write(token + "\n")


@channels_app.command("revoke-push-token")
def revoke_push_token(ctx: typer.Context, channel: ChannelArg, tenant: TenantOpt) -> None:
    """Revoke a tenant's push token: it stops working at once."""
    _channels(ctx).revoke_push_token(channel, tenant)
    console.print(f"push token of {escape(tenant)} on {escape(channel)} revoked", highlight=False)


StageArg = Annotated[str, typer.Argument(help="The stage's name.")]


@channels_app.command("rollback")
def rollback(
    ctx: typer.Context,
    channel: ChannelArg,
    stage: StageArg,
    to: Annotated[int, typer.Option("--to", min=1, help="The manifest version to serve again.")],
    output: OutputOpt = Output.table,
) -> None:
    """Point a stage back at an earlier manifest: a deployment in the channel's turn, through
    the stage's approval, flip and test (flipped back if they fail); the head stays."""
    d = _channels(ctx).rollback_stage(channel, stage, to)
    if output is Output.json:
        print_json(d.to_dict())
        return
    console.print(
        f"queued deployment {d.id}: stage {stage} of {channel} back to version {to}; "
        f"run {d.run_id}",
        highlight=False,
    )


@channels_app.command("pin")
def pin(ctx: typer.Context, channel: ChannelArg, stage: StageArg) -> None:
    """Stop promotions at a stage: pushes go through the stages before it only."""
    _channels(ctx).pin(channel, stage)
    console.print(f"stage {stage} of {channel} pinned", highlight=False)


@channels_app.command("unpin")
def unpin(ctx: typer.Context, channel: ChannelArg, stage: StageArg) -> None:
    """Let promotions reach a pinned stage again (from the next push)."""
    _channels(ctx).unpin(channel, stage)
    console.print(f"stage {stage} of {channel} unpinned", highlight=False)


@channels_app.command("flips")
def flips(
    ctx: typer.Context,
    channel: ChannelArg,
    stage: Annotated[str | None, typer.Option(help="One stage's only.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """How the channel's stages moved, newest first: flips and flip-backs."""
    found = _channels(ctx).flips(channel, stage, limit)
    if output is Output.json:
        print_json([f.to_dict() for f in found])
        return
    rows = [
        (
            when(f.at),
            f.stage,
            f.kind,
            "-" if f.from_version is None else str(f.from_version),
            "-" if f.to_version is None else str(f.to_version),
            f.deployment_id,
        )
        for f in found
    ]
    table(channel, ["AT", "STAGE", "KIND", "FROM", "TO", "DEPLOYMENT"], rows)
