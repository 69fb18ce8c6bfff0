"""Runs: the list (filters, keyset pages, live statuses) and a run's page (timeline,
attempts, params, live logs, events, errors, approval, cancel)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from lockgate.app import App
from lockgate.client import Client
from lockgate.console.ansi import ansi_html, plain
from lockgate.console.core import (
    COOKIE,
    Lockgate,
    Operator,
    Person,
    Viewer,
    back,
    console_router,
    page,
)
from lockgate.core.cursor import decode_cursor, encode_cursor
from lockgate.core.statuses import RunStatus
from lockgate.core.text import attachment
from lockgate.errors import NotFound, ParamsError
from lockgate.records import LogRecord, RunRecord

router = console_router()

PAGE = 50
LIVE_POLL = 0.25
KEEPALIVE = 15.0
#: Log lines on one page of a run's logs (the download has them all).
LOG_PAGE = 1000
#: How often a live stream checks that its session still holds.
RECHECK_SESSION = 5.0


def _since(value: str) -> float | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ParamsError([f"since: {value!r} is not a date (YYYY-MM-DD or an ISO time)"]) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@router.get("/runs", response_class=HTMLResponse)
def runs(
    request: Request,
    who: Viewer,
    pipeline: Annotated[str, Query(max_length=401)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    namespace: Annotated[str, Query(max_length=200)] = "",
    trigger: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
    fragment: str = "",
) -> Response:
    if status and status not in RunStatus.__members__:
        raise ParamsError([f"status: one of {', '.join(RunStatus)}"])
    before = None
    if cursor:
        at, run_id = decode_cursor(cursor, 2)
        before = (float(at), str(run_id))
    found = who.client.list_runs(
        status=status or None,
        pipeline=pipeline or None,
        namespace=namespace or None,
        requested_by=trigger or None,
        since=_since(since),
        before=before,
        limit=PAGE,
    )
    following = encode_cursor(found[-1].created_at, found[-1].id) if len(found) == PAGE else None
    filters = {
        "pipeline": pipeline,
        "status": status,
        "namespace": namespace,
        "trigger": trigger,
        "since": since,
    }
    template = "runs_rows.html" if fragment == "rows" else "runs.html"
    return page(
        request,
        template,
        title="Runs",
        runs=found,
        filters=filters,
        statuses=list(RunStatus),
        following=following,
        first=not cursor,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, who: Viewer, lg: Lockgate) -> Response:
    view = who.client.get_run(run_id)
    approval = who.client.approval(run_id)
    waiting = approval is not None and approval.approval.outcome is None
    failed = approval is not None and approval.approval.request.get("kind") == "failure"
    return page(
        request,
        "run.html",
        title=f"Run {run_id}",
        view=view,
        params=view.run.params,  # masked by the App, as for every face
        events=who.client.events(run_id),
        approval=approval,
        may_decide=waiting
        and who.can("operator" if failed else "approver")
        and who.may_decide(approval),  # type: ignore[arg-type]
        active=not RunStatus(view.run.status).terminal,
        origin=_origin(lg, view.run, who),
    )


#: What a delivery of each source is called on a run's page.
_FIRINGS = {"webhook": "webhook delivery", "schedule": "schedule tick", "poller": "poll"}


def _origin(lg: App, run: RunRecord, who: Person) -> tuple[str, str | None] | None:
    """(label, link) of the delivery that started a run. The link goes to its trigger's
    page, which for a webhook only an admin may read (a trigger's id is not for viewers)."""
    if run.delivery_id is None:
        return None
    try:
        delivery = lg.deliveries.delivery(run.delivery_id)
    except NotFound:  # pruned by retention since
        return f"delivery #{run.delivery_id}", None
    label = f"{_FIRINGS.get(delivery.source, 'delivery')} #{delivery.id}"
    if delivery.source == "webhook" and not who.can("admin"):
        return label, None
    return label, f"/triggers/{delivery.source}s/{delivery.trigger_id}"


@router.post("/runs/{run_id}/rerun")
def rerun(run_id: str, act: Operator) -> Response:
    run = act.person.client.rerun(run_id, latest="latest" in act.form)
    return back(f"/runs/{run.id}", f"a re-run of {run_id} started")


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, act: Operator) -> Response:
    act.person.client.cancel_run(run_id)
    return back(f"/runs/{run_id}", "cancel requested: the step stops and the run rolls back")


@router.get("/runs/{run_id}/logs", response_class=HTMLResponse)
def logs_page(
    request: Request,
    run_id: str,
    who: Viewer,
    step: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """A page of log lines (``LOG_PAGE`` at most, from line id ``after``), or the lines
    that match ``q``; the download has them all (an unknown run is 404, not an empty
    page)."""
    lines: list[LogRecord] = []
    cursor = after
    while len(lines) < LOG_PAGE:
        chunk = who.client.logs(run_id, step or None, cursor)
        if not chunk:
            break
        cursor = chunk[-1].id
        if q:
            chunk = [line for line in chunk if q.lower() in plain(line.message).lower()]
        lines.extend(chunk)
    shown = lines[:LOG_PAGE]
    following = shown[-1].id if len(shown) == LOG_PAGE else None
    return page(
        request,
        "logs.html",
        title=f"Logs of {run_id}",
        run_id=run_id,
        step=step,
        q=q,
        lines=shown,
        following=following,
        after=after,
    )


@router.get("/runs/{run_id}/logs.txt", response_class=PlainTextResponse)
def download_logs(
    run_id: str,
    who: Viewer,
    step: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    lines = _all_logs(who.client, run_id, step or None)
    text = "".join(
        f"{dt.datetime.fromtimestamp(line.at, dt.UTC).isoformat()} {line.step} "
        f"{line.level.upper()} {plain(line.message)}\n"
        for line in lines
    )
    name = f"{run_id}-{step}.log" if step else f"{run_id}.log"
    return PlainTextResponse(text, headers={"Content-Disposition": attachment(name)})


def _all_logs(client: Client, run_id: str, step: str | None) -> list[LogRecord]:
    """Every log line (an unknown run is 404, not an empty download)."""
    lines: list[LogRecord] = []
    after = 0
    while True:
        chunk = client.logs(run_id, step, after)
        if not chunk:
            return lines
        lines.extend(chunk)
        after = chunk[-1].id


@router.get("/runs/{run_id}/live")
def live(request: Request, run_id: str, who: Viewer, lg: Lockgate) -> StreamingResponse:
    """Server-sent events for a run's page: ``log`` (each new line, rendered), ``status``
    (the run and its steps, when they change), then ``end``. Resumes after Last-Event-ID."""
    lg.run_record(run_id)
    start = request.headers.get("last-event-id", "0")
    after = int(start) if start.isdigit() else 0

    async def events() -> AsyncIterator[str]:
        nonlocal after
        shown, idle, checked, seen = "", 0.0, time.monotonic(), -1.0
        cookie = request.cookies.get(COOKIE)
        while True:
            if await request.is_disconnected():
                return
            if time.monotonic() - checked >= RECHECK_SESSION:
                checked = time.monotonic()  # a sign-out or a revoked token ends the stream
                if await asyncio.to_thread(lg.sessions.find, cookie) is None:
                    yield _sse("end", {"reason": "signed out"})
                    return
            lines = await asyncio.to_thread(lg.logs, run_id, None, after)
            for line in lines:
                after = line.id
                data = {
                    "id": line.id,
                    "step": line.step,
                    "level": line.level,
                    "at": line.at,
                    "html": str(ansi_html(line.message)),
                }
                yield f"id: {line.id}\n" + _sse("log", data)
            run = await asyncio.to_thread(lg.run_record, run_id)
            if run.updated_at != seen:  # the steps are read again only when the run moved
                seen = run.updated_at
                view = await asyncio.to_thread(lg.get_run, run_id)
                status = {
                    "status": view.run.status,
                    "steps": {
                        s.name: {"status": s.status, "attempt": s.attempt} for s in view.steps
                    },
                }
                if json.dumps(status) != shown:
                    shown = json.dumps(status)
                    yield _sse("status", status)
            if RunStatus(run.status).terminal and not lines:
                yield _sse("end", {"status": run.status})
                return
            if lines:
                idle = 0.0
                continue
            await asyncio.sleep(LIVE_POLL)
            idle += LIVE_POLL
            if idle >= KEEPALIVE:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
