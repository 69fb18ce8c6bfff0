"""Run routes: start, list, show, events, logs (and their live stream), cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from lockgate.api.auth import bearer
from lockgate.api.deps import Lockgate, Operator, Strict, Viewer, position
from lockgate.core.cursor import encode_cursor
from lockgate.core.statuses import RunStatus
from lockgate.errors import LockgateError

router = APIRouter(prefix="/api/v1")


#: How often a log stream looks for new lines, and sends a comment to keep proxies open.
STREAM_POLL = 0.25
KEEPALIVE = 15.0
#: How often a live stream checks that its token still works.
RECHECK_TOKEN = 2.0


class StartRun(Strict):
    """A service request: which pipeline, with which params."""

    pipeline: str = Field(max_length=401)
    params: dict[str, Any] = Field(default_factory=dict)
    namespace: str = Field("default", max_length=200)
    dry_run: bool = False
    context: dict[str, Any] | None = Field(
        None, description="The first values of the run's context bag (ctx.context)."
    )


@router.post("/runs", status_code=201, summary="Start a run (a service request)")
def start_run(
    body: StartRun,
    caller: Operator,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    run = caller.client.start_run(
        body.pipeline,
        body.params,
        namespace=body.namespace,
        noop=body.dry_run,
        idempotency_key=f"api:{idempotency_key}" if idempotency_key else None,
        context=body.context,
    )
    return run.to_dict()


@router.get("/runs", summary="Runs, newest first, with cursor pagination")
def list_runs(
    caller: Viewer,
    status: RunStatus | None = None,
    pipeline: str | None = None,
    namespace: str | None = None,
    requested_by: Annotated[
        str | None, Query(max_length=200, description="A prefix: schedule:, github:, a name")
    ] = None,
    since: Annotated[float | None, Query(description="Created at or after (UNIX time)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    runs = caller.client.list_runs(
        status=status.value if status else None,
        pipeline=pipeline,
        namespace=namespace,
        requested_by=requested_by,
        since=since,
        before=position(cursor, 2),
        limit=limit,
    )
    following = encode_cursor(runs[-1].created_at, runs[-1].id) if len(runs) == limit else None
    return {"runs": [r.to_dict() for r in runs], "next": following}


@router.get("/runs/{run_id}", summary="A run with its steps")
def show_run(run_id: str, caller: Viewer) -> dict[str, Any]:
    return caller.client.get_run(run_id).to_dict()


@router.get("/runs/{run_id}/events", summary="A run's events, oldest first")
def run_events(
    run_id: str, caller: Viewer, after: Annotated[int, Query(ge=0)] = 0
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in caller.client.events(run_id, after)]


@router.get("/runs/{run_id}/logs", summary="A run's step logs (page with ?after=<last id>)")
def run_logs(
    run_id: str,
    caller: Viewer,
    step: str | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    return [line.to_dict() for line in caller.client.logs(run_id, step, after)]


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
    token = bearer(request.headers.get("Authorization", ""))

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
            run = await asyncio.to_thread(lg.run_record, run_id)
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


class RerunBody(Strict):
    """How to run a finished run again."""

    latest: bool = Field(
        False, description="Run the pipeline's newest version (default: the same version)."
    )


@router.post(
    "/runs/{run_id}/rerun",
    status_code=201,
    summary="Start a new run with a finished run's params (same version unless latest)",
)
def rerun(run_id: str, caller: Operator, body: RerunBody | None = None) -> dict[str, Any]:
    latest = body.latest if body is not None else False
    return caller.client.rerun(run_id, latest=latest).to_dict()


@router.post("/runs/{run_id}/cancel", summary="Stop the run's step and roll it back")
def cancel_run(run_id: str, caller: Operator) -> dict[str, Any]:
    return caller.client.cancel_run(run_id).to_dict()
