"""Channel routes under ``/api/v1/channels``: push, deployments, stages and manifests.

Pushing needs an operator token or a tenant's push token for the channel (which pushes that
tenant's content only). Reading what a stage serves
needs a viewer token, unless the channel is defined with ``public_read``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import Field

from lockgate.access.tokens import Role
from lockgate.api.auth import bearer, lockgate, require
from lockgate.api.deps import Admin, Lockgate, Operator, Strict, Viewer
from lockgate.app import App
from lockgate.channels.service import PUSH_TOKEN_PREFIX
from lockgate.client import Client
from lockgate.errors import ChannelNotFound, Forbidden, ParamsError

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])

_viewer = require(Role.viewer)
_operator = require(Role.operator)


@dataclass(frozen=True)
class Pushing:
    """Who pushes, and for a push token the one tenant it may push for."""

    identity: str
    #: lockgate, acting as the pusher.
    client: Client
    tenant: str | None = None


def _pusher(channel: str, request: Request) -> Pushing:
    """Who pushes: an operator token, or a tenant's push token for this channel."""
    app = lockgate(request)
    token = bearer(request.headers.get("Authorization", ""))
    if token.startswith(PUSH_TOKEN_PREFIX):
        tenant = app.channels.check_push_token(channel, token)
        identity = f"push-token:{channel}/{tenant}"
        return Pushing(identity, app.acting(identity), tenant)
    operator = _operator(request)
    return Pushing(operator.name, operator.client)


async def _stage_reader(channel: str, request: Request) -> str | None:
    """Anyone for a channel defined with ``public_read``; else a viewer token.

    Async, like the stage routes: the hot read path makes no hop to a thread pool.
    """
    app = lockgate(request)
    try:
        if app.channels.get(channel).public_read:
            return None
    except ChannelNotFound:
        pass  # answered by the route itself, after authentication
    caller = await asyncio.to_thread(_viewer, request)
    return caller.name


Pusher = Annotated[Pushing, Depends(_pusher)]
StageReader = Annotated[str | None, Depends(_stage_reader)]


class PushBody(Strict):
    """One tenant's content for a channel."""

    tenant: str | None = Field(
        None, min_length=1, max_length=200, description="Implied by a tenant's push token."
    )
    content: Any = None
    command: str | None = Field(None, max_length=50)


def _channel(app: App, name: str) -> dict[str, Any]:
    record = app.channels.record(name)
    return {**record.to_dict(), "defined_here": app.channels.defines(name)}


@router.get("", summary="Channels: every one registered, and whether this server defines it")
def list_channels(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [
        {**record.to_dict(), "defined_here": lg.channels.defines(record.name)}
        for record in caller.client.channels.registered()
    ]


@router.get("/{channel}", summary="A channel: definition, head version, who holds its turn")
def show_channel(channel: str, caller: Viewer, lg: Lockgate) -> dict[str, Any]:
    return _channel(lg, channel)


@router.post(
    "/{channel}/push",
    status_code=202,
    summary="Push a tenant's content: queues a deployment (operator or push token)",
)
def push(
    channel: str,
    body: PushBody,
    pusher: Pusher,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    tenant = pusher.tenant or body.tenant
    if pusher.tenant is not None and body.tenant not in (None, pusher.tenant):
        raise Forbidden(f"this push token pushes for tenant {pusher.tenant!r} only")
    if tenant is None:
        raise ParamsError(["tenant: required with an operator token"])
    deployment = pusher.client.channels.push(
        channel,
        tenant,
        body.content,
        command=body.command,
        # Keys are the tenant's own: another tenant cannot take them first.
        idempotency_key=f"push:{channel}:{tenant}:{idempotency_key}" if idempotency_key else None,
    )
    return deployment.to_dict()


@router.get("/{channel}/deployments", summary="A channel's deployments, newest first")
def list_deployments(
    channel: str,
    caller: Viewer,
    before: Annotated[int | None, Query(ge=1, description="Sequence number to page from")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    found = caller.client.channels.deployments(channel, before=before, limit=limit)
    following = found[-1].seq if len(found) == limit else None
    return {"deployments": [d.to_dict() for d in found], "next": following}


@router.get(
    "/{channel}/deployments/{deployment_id}",
    summary="A deployment with its run's steps (channel '-' finds it in any channel)",
)
def show_deployment(channel: str, deployment_id: str, caller: Viewer) -> dict[str, Any]:
    d = caller.client.channels.deployment(deployment_id)
    if channel != "-" and d.channel != channel:
        raise ChannelNotFound(f"channel {channel!r} has no deployment {deployment_id!r}")
    return {**d.to_dict(), "run": caller.client.get_run(d.run_id).to_dict()}


@router.get("/{channel}/stages", summary="Every stage and the manifest it serves (one query)")
def list_stages(channel: str, reader: StageReader, lg: Lockgate) -> list[dict[str, Any]]:
    return [st.to_dict() for st in lg.channels.stages(channel)]


@router.get(
    "/{channel}/stages/{stage}/manifest",
    summary="The manifest a stage serves (ETag; If-None-Match answers 304)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 304: {"description": "Unchanged"}},
)
async def stage_manifest(
    channel: str,
    stage: str,
    reader: StageReader,
    lg: Lockgate,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    # One indexed read that never blocks the loop: on PostgreSQL an async connection (a
    # slow database stalls no other request); a SQLite read in WAL mode never waits for
    # writers and costs less in place than a hop to a thread.
    current = await lg.channels.stage_manifest_async(channel, stage)
    headers = {
        "ETag": current.etag,
        "X-Manifest-Version": str(current.version),
        "Cache-Control": "no-cache",
    }
    if if_none_match is not None and current.etag in _tags(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(current.body, media_type="application/json", headers=headers)


def _tags(header: str) -> set[str]:
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return tags if "*" not in tags else tags | {"*"}


@router.get(
    "/{channel}/stages/{stage}/tenants/{tenant}",
    summary="A tenant's slice of the manifest a stage serves",
)
def tenant_slice(
    channel: str, stage: str, tenant: str, reader: StageReader, lg: Lockgate
) -> dict[str, Any]:
    current, part = lg.channels.tenant_slice(channel, stage, tenant)
    return {"version": current.version, "hash": current.hash, "tenant": tenant, "data": part}


@router.get("/{channel}/manifests", summary="Manifest history, newest first, with parents")
def history(
    channel: str,
    caller: Viewer,
    before: Annotated[int | None, Query(ge=1, description="Version to page from")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    found = caller.client.channels.history(channel, before=before, limit=limit)
    rows = [{k: v for k, v in m.to_dict().items() if k != "body"} for m in found]
    return {"manifests": rows, "next": found[-1].version if len(found) == limit else None}


@router.get("/{channel}/manifests/{version}", summary="One manifest by version")
def manifest(channel: str, version: Annotated[int, Path(ge=1)], caller: Viewer) -> dict[str, Any]:
    m = caller.client.channels.manifest(channel, version)
    data = {k: v for k, v in m.to_dict().items() if k != "body"}
    return {**data, "manifest": json.loads(m.body)}


class PushTokenBody(Strict):
    """The tenant a push token pushes for."""

    tenant: str = Field(min_length=1, max_length=200)


@router.post(
    "/{channel}/push-token",
    status_code=201,
    summary="Make a tenant's push token (replaces its old one); shown once (admin)",
)
def create_push_token(channel: str, body: PushTokenBody, caller: Admin) -> dict[str, Any]:
    token = caller.client.channels.create_push_token(channel, body.tenant)
    return {"channel": channel, "tenant": body.tenant, "token": token}


@router.delete(
    "/{channel}/push-token", status_code=204, summary="Revoke a tenant's push token (admin)"
)
def revoke_push_token(
    channel: str,
    caller: Admin,
    tenant: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    caller.client.channels.revoke_push_token(channel, tenant)
    return Response(status_code=204)


class StageRollback(Strict):
    """The manifest version a stage goes back to."""

    version: int = Field(ge=1)


@router.post(
    "/{channel}/stages/{stage}/rollback",
    status_code=202,
    summary="Point a stage back at an earlier manifest: queues a deployment (operator)",
)
def rollback_stage(
    channel: str, stage: str, body: StageRollback, caller: Operator
) -> dict[str, Any]:
    found = caller.client.channels.rollback_stage(channel, stage, body.version)
    return found.to_dict()


@router.post("/{channel}/stages/{stage}/pin", summary="Stop promotions at a stage (operator)")
def pin_stage(channel: str, stage: str, caller: Operator) -> dict[str, Any]:
    return caller.client.channels.pin(channel, stage).to_dict()


@router.post("/{channel}/stages/{stage}/unpin", summary="Let promotions reach a stage again")
def unpin_stage(channel: str, stage: str, caller: Operator) -> dict[str, Any]:
    return caller.client.channels.unpin(channel, stage).to_dict()


@router.get("/{channel}/flips", summary="Moves of the channel's stages, newest first")
def list_flips(
    channel: str,
    caller: Viewer,
    stage: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [f.to_dict() for f in caller.client.channels.flips(channel, stage, limit)]
