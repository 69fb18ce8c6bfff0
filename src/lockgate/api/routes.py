"""The REST routes under ``/api/v1``: each one authorises, then calls the App."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lockgate.api.auth import Caller, lockgate, require
from lockgate.app import App
from lockgate.channels.pipeline import NAMESPACE as CHANNEL_NAMESPACE
from lockgate.core.cursor import decode_cursor, encode_cursor
from lockgate.core.statuses import RunStatus
from lockgate.errors import Forbidden, LockgateError, NotFound, ParamsError
from lockgate.tokens import Role

router = APIRouter(prefix="/api/v1")

#: How often a log stream looks for new lines, and sends a comment to keep proxies open.
STREAM_POLL = 0.25
KEEPALIVE = 15.0
#: How often a live stream checks that its token still works.
RECHECK_TOKEN = 2.0

Viewer = Annotated[Caller, Depends(require(Role.viewer))]
Operator = Annotated[Caller, Depends(require(Role.operator))]
Approver = Annotated[Caller, Depends(require(Role.approver))]
Admin = Annotated[Caller, Depends(require(Role.admin))]
Lockgate = Annotated[App, Depends(lockgate)]


class Strict(BaseModel):
    """Request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class StartRun(Strict):
    """A service request: which pipeline, with which params."""

    pipeline: str = Field(max_length=401)
    params: dict[str, Any] = Field(default_factory=dict)
    namespace: str = Field("default", max_length=200)
    dry_run: bool = False


class DecisionBody(Strict):
    """An approver's decision."""

    decision: Literal["approve", "reject"]
    step: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)
    input: dict[str, Any] | None = None


class TokenBody(Strict):
    """A token to create."""

    name: str = Field(min_length=1, max_length=200)
    role: Role
    subject: str | None = Field(
        None, min_length=1, max_length=200, description="The person or machine (default: name)."
    )


@router.get("/pipelines", summary="Registered pipelines (newest version of each)")
def list_pipelines(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in lg.pipelines():
        latest.setdefault(f"{rec.namespace}/{rec.name}", rec.to_dict())
    return list(latest.values())


@router.get("/pipelines/{name}", summary="A pipeline with its params schema and steps")
def show_pipeline(name: str, caller: Viewer, lg: Lockgate) -> dict[str, Any]:
    for rec in lg.pipelines():
        if rec.name == name:
            return rec.to_dict()
    raise NotFound(f"no pipeline {name!r} is registered")


@router.post("/runs", status_code=201, summary="Start a run (a service request)")
def start_run(
    body: StartRun,
    caller: Operator,
    lg: Lockgate,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    if body.namespace == CHANNEL_NAMESPACE or body.pipeline.startswith(f"{CHANNEL_NAMESPACE}/"):
        # A channel's deployments start by pushing, through the channel's rules and turn.
        raise Forbidden("channel pipelines are started by pushing to the channel, not here")
    run = lg.start_run(
        body.pipeline,
        body.params,
        namespace=body.namespace,
        requested_by=caller.name,
        noop=body.dry_run,
        idempotency_key=f"api:{idempotency_key}" if idempotency_key else None,
        actor=caller.name,
    )
    return run.to_dict()


@router.get("/runs", summary="Runs, newest first, with cursor pagination")
def list_runs(
    caller: Viewer,
    lg: Lockgate,
    status: RunStatus | None = None,
    pipeline: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    runs = lg.list_runs(
        status=status.value if status else None,
        pipeline=pipeline,
        before=_position(cursor, 2),
        limit=limit,
    )
    following = encode_cursor(runs[-1].created_at, runs[-1].id) if len(runs) == limit else None
    return {"runs": [r.to_dict() for r in runs], "next": following}


@router.get("/runs/{run_id}", summary="A run with its steps")
def show_run(run_id: str, caller: Viewer, lg: Lockgate) -> dict[str, Any]:
    return lg.get_run(run_id).to_dict()


@router.get("/runs/{run_id}/events", summary="A run's events, oldest first")
def run_events(
    run_id: str, caller: Viewer, lg: Lockgate, after: Annotated[int, Query(ge=0)] = 0
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in lg.events(run_id, after)]


@router.get("/runs/{run_id}/logs", summary="A run's step logs (page with ?after=<last id>)")
def run_logs(
    run_id: str,
    caller: Viewer,
    lg: Lockgate,
    step: str | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    return [line.to_dict() for line in lg.logs(run_id, step, after)]


@router.get(
    "/runs/{run_id}/logs/stream",
    summary="Live step logs as server-sent events (resumes from Last-Event-ID)",
    response_class=StreamingResponse,
)
def stream_logs(
    run_id: str,
    caller: Viewer,
    lg: Lockgate,
    request: Request,
    step: str | None = None,
    last_event_id: Annotated[int, Header(ge=0)] = 0,
) -> StreamingResponse:
    lg.get_run(run_id)  # 404 before the stream starts
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()

    async def events() -> AsyncIterator[str]:
        after, idle, checked = last_event_id, 0.0, time.monotonic()
        while True:
            if time.monotonic() - checked >= RECHECK_TOKEN:
                checked = time.monotonic()
                try:  # a token revoked mid-stream ends the stream
                    await asyncio.to_thread(lg.tokens.authenticate, token)
                except LockgateError:
                    yield f"event: end\ndata: {json.dumps({'reason': 'token revoked'})}\n\n"
                    return
            lines = await asyncio.to_thread(lg.logs, run_id, step, after)
            for line in lines:
                after = line.id
                yield f"id: {line.id}\nevent: log\ndata: {json.dumps(line.to_dict())}\n\n"
            if lines:
                idle = 0.0
                continue
            run = await asyncio.to_thread(lg.store.get_run, run_id)
            if RunStatus(run.status).terminal:
                if not await asyncio.to_thread(lg.logs, run_id, step, after):
                    yield f"event: end\ndata: {json.dumps({'status': run.status})}\n\n"
                    return
                continue
            await asyncio.sleep(STREAM_POLL)
            idle += STREAM_POLL
            if idle >= KEEPALIVE:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.post("/runs/{run_id}/cancel", summary="Stop the run's step and roll it back")
def cancel_run(run_id: str, caller: Operator, lg: Lockgate) -> dict[str, Any]:
    return lg.cancel_run(run_id, by=caller.name).to_dict()


@router.get("/approvals", summary="Approval steps waiting for decisions, oldest first")
def pending_approvals(
    caller: Viewer,
    lg: Lockgate,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    pending = lg.approvals(limit=limit, before=_position(cursor, 3))
    last = pending[-1].approval if pending else None
    following = (
        encode_cursor(last.opened_at, last.run_id, last.step)
        if last is not None and len(pending) == limit
        else None
    )
    return {"approvals": [p.to_dict() for p in pending], "next": following}


@router.post("/runs/{run_id}/decisions", status_code=201, summary="Approve or reject")
def decide(run_id: str, body: DecisionBody, caller: Approver, lg: Lockgate) -> dict[str, Any]:
    record = lg.decide(
        run_id,
        body.decision,
        by=caller.name,
        roles=caller.roles,
        step=body.step,
        comment=body.comment,
        input=body.input,
    )
    return record.to_dict()


@router.get("/tokens", summary="API tokens (never their secrets)")
def list_tokens(caller: Admin, lg: Lockgate) -> list[dict[str, Any]]:
    return [t.to_dict() for t in lg.tokens.list()]


@router.post("/tokens", status_code=201, summary="Create a token; its secret is shown once")
def create_token(body: TokenBody, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    record, secret = lg.tokens.create(
        body.name, body.role.value, subject=body.subject, actor=caller.name
    )
    return {**record.to_dict(), "token": secret}


@router.delete("/tokens/{token_id}", summary="Revoke a token")
def revoke_token(token_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    return lg.tokens.revoke(token_id, actor=caller.name).to_dict()


@router.get("/audit", summary="Who did what: decisions, token use, runs started and cancelled")
def audit_log(
    caller: Admin,
    lg: Lockgate,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [a.to_dict() for a in lg.store.get_audit(after, limit)]


class TriggerBody(Strict):
    """A webhook trigger to create."""

    provider: str = Field(max_length=20)
    pipeline: str = Field(max_length=401)
    namespace: str = Field("default", max_length=200)
    secret: str | None = Field(None, max_length=500)
    events: list[str] = Field(default_factory=list, max_length=50)
    branches: list[str] = Field(default_factory=list, max_length=50)
    params: dict[str, Any] = Field(default_factory=dict)
    allow_ips: list[str] = Field(default_factory=list, max_length=50)


@router.post("/triggers", status_code=201, summary="Create a webhook trigger")
def create_trigger(body: TriggerBody, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    trigger, url_token = lg.webhooks.create(
        body.provider,
        body.pipeline,
        secret=body.secret,
        namespace=body.namespace,
        events=body.events,
        branches=body.branches,
        params=body.params,
        allow_ips=body.allow_ips,
        actor=caller.name,
    )
    url = f"/hooks/{trigger.id}" + (f"?token={url_token}" if url_token else "")
    # An unsigned provider's URL token is in this answer only; it is stored hashed.
    return {**trigger.to_dict(), "url": url}


@router.get("/triggers", summary="Triggers (secrets masked)")
def list_triggers(caller: Admin, lg: Lockgate) -> list[dict[str, Any]]:
    return [t.to_dict() for t in lg.webhooks.triggers.all()]


@router.delete("/triggers/{trigger_id}", summary="Delete a trigger and its deliveries")
def delete_trigger(trigger_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    lg.webhooks.delete(trigger_id, actor=caller.name)
    return {"deleted": trigger_id}


@router.get(
    "/triggers/{trigger_id}/deliveries",
    summary="Firings of a webhook trigger, a schedule or a poller, newest first",
)
def list_deliveries(
    trigger_id: str,
    caller: Viewer,
    lg: Lockgate,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    before = _position(cursor, 1)
    found = lg.deliveries(trigger_id, limit, int(before[0]) if before else None)
    following = encode_cursor(found[-1].id) if len(found) == limit else None
    return {"deliveries": [d.to_dict() for d in found], "next": following}


def _position(cursor: str | None, parts: int) -> tuple[Any, ...] | None:
    """The keyset position in a cursor a list returned (``None`` for the first page)."""
    if not cursor:
        return None
    position = decode_cursor(cursor, parts)
    try:
        return (float(position[0]), *position[1:]) if parts > 1 else (int(position[0]),)
    except (TypeError, ValueError) as exc:
        raise ParamsError(["cursor: not a cursor this API returned"]) from exc


class ScheduleBody(Strict):
    """A cron or interval schedule to create."""

    pipeline: str = Field(max_length=401)
    namespace: str = Field("default", max_length=200)
    cron: str | None = Field(None, max_length=200)
    interval_seconds: float | None = None
    timezone: str = Field("UTC", max_length=64)
    misfire: Literal["skip", "run_once"] = "skip"
    params: dict[str, Any] = Field(default_factory=dict)


@router.post("/schedules", status_code=201, summary="Create a cron or interval schedule")
def create_schedule(body: ScheduleBody, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    schedule = lg.schedules.create(
        body.pipeline,
        cron=body.cron,
        interval_seconds=body.interval_seconds,
        timezone=body.timezone,
        misfire=body.misfire,
        namespace=body.namespace,
        params=body.params,
        actor=caller.name,
    )
    return schedule.to_dict()


@router.get("/schedules", summary="Schedules with their next fire times")
def list_schedules(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [x.to_dict() for x in lg.schedules.store.all()]


@router.delete("/schedules/{schedule_id}", summary="Delete a schedule")
def delete_schedule(schedule_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    lg.schedules.delete(schedule_id, actor=caller.name)
    return {"deleted": schedule_id}


class PollerBody(Strict):
    """A git repository to poll."""

    pipeline: str = Field(max_length=401)
    repository: str = Field(max_length=2000)
    refs: list[str] = Field(default_factory=lambda: ["refs/heads/*"], max_length=50)
    interval_seconds: float = 60.0
    namespace: str = Field("default", max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


@router.post("/pollers", status_code=201, summary="Poll a git repository for new commits")
def create_poller(body: PollerBody, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    poller = lg.pollers.create(
        body.pipeline,
        body.repository,
        refs=body.refs,
        interval_seconds=body.interval_seconds,
        namespace=body.namespace,
        params=body.params,
        actor=caller.name,
    )
    return poller.to_dict()


@router.get("/pollers", summary="Pollers with their last-seen commits and errors")
def list_pollers(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [p.to_dict() for p in lg.pollers.store.all()]


@router.delete("/pollers/{poller_id}", summary="Delete a poller")
def delete_poller(poller_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    lg.pollers.delete(poller_id, actor=caller.name)
    return {"deleted": poller_id}


@router.post("/deliveries/{delivery_id}/redeliver", summary="Process a delivery again")
def redeliver(delivery_id: int, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    return lg.webhooks.redeliver(delivery_id, actor=caller.name).body
