"""Channels: each stage and the manifest it serves since when, manifests with a diff between
versions, deployments with their run, and the flip history."""

from __future__ import annotations

import difflib
import json
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response

from lockgate.console.core import Lockgate, Operator, Viewer, back, console_router, page
from lockgate.errors import NotFound, ParamsError

router = console_router()


@router.get("/channels", response_class=HTMLResponse)
def channels(request: Request, who: Viewer, lg: Lockgate) -> Response:
    found = [(ch.name, who.client.channels.stages(ch.name)) for ch in lg.channels.defined()]
    return page(request, "channels.html", title="Channels", channels=found)


@router.get("/channels/{name}", response_class=HTMLResponse)
def channel(request: Request, name: str, who: Viewer, lg: Lockgate) -> Response:
    return page(
        request,
        "channel.html",
        title=f"Channel {name}",
        name=name,
        record=lg.channels.record(name),
        stages=who.client.channels.stages(name),
        deployments=who.client.channels.deployments(name, limit=30),
        manifests=who.client.channels.history(name, limit=30),
        flips=who.client.channels.flips(name, limit=30),
    )


def _lines(body: str) -> list[str]:
    return json.dumps(json.loads(body), indent=2, sort_keys=True).splitlines()


@router.post("/channels/{name}/stages/{stage}/{action}")
def operate(name: str, stage: str, action: str, act: Operator) -> Response:
    if action == "pin":
        act.person.client.channels.pin(name, stage)
        return back(f"/channels/{name}", f"stage {stage} pinned: promotions stop there")
    if action == "unpin":
        act.person.client.channels.unpin(name, stage)
        return back(f"/channels/{name}", f"stage {stage} unpinned")
    if action == "rollback":
        raw = act.form.get("version", "")
        if not raw.isdigit():
            raise ParamsError(["version: the manifest version to go back to"])
        d = act.person.client.channels.rollback_stage(name, stage, int(raw))
        return back(f"/runs/{d.run_id}", f"stage {stage} goes back to version {raw}")
    raise NotFound(f"no action {action!r} (pin, unpin or rollback)")


@router.get("/channels/{name}/diff", response_class=HTMLResponse)
def diff(
    request: Request,
    name: str,
    who: Viewer,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
) -> Response:
    older, newer = who.client.channels.manifest(name, a), who.client.channels.manifest(name, b)
    lines = list(
        difflib.unified_diff(
            _lines(older.body), _lines(newer.body), f"version {a}", f"version {b}", lineterm=""
        )
    )
    return page(request, "diff.html", title=f"{name}: {a} → {b}", name=name, a=a, b=b, lines=lines)
