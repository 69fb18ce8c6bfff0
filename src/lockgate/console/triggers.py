"""Triggers: webhooks (the URL and headers for the provider), schedules with their next
ticks, pollers; each one's deliveries with their outcome; pause, resume, redeliver."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from lockgate.app import App
from lockgate.console.core import (
    Admin,
    Lockgate,
    Viewer,
    back,
    console_router,
    page,
    viewing,
)
from lockgate.errors import NotFound
from lockgate.tokens import Role
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.schedules import next_fire

router = console_router()

#: What providers sign with, shown next to a webhook's URL.
HEADERS = {
    "github": "X-Hub-Signature-256 (set the webhook's secret; content type application/json)",
    "gitlab": "X-Gitlab-Token (the secret as the token)",
    "bitbucket-cloud": "X-Hub-Signature (set the webhook's secret)",
    "bitbucket-server": "X-Hub-Signature (set the webhook's secret)",
    "gerrit": "none: the URL carries a token of its own, shown once when the trigger was made",
    "generic": "X-Signature: sha256=<HMAC-SHA256 of the body with the secret>",
}
KINDS = ("webhooks", "schedules", "pollers")


def _service(lg: App, kind: str) -> Any:
    if kind not in KINDS:
        raise NotFound(f"no kind of trigger {kind!r} (one of {', '.join(KINDS)})")
    return {"webhooks": lg.webhooks, "schedules": lg.schedules, "pollers": lg.pollers}[kind]


@router.get("/triggers", response_class=HTMLResponse)
def triggers(request: Request, who: Viewer, lg: Lockgate) -> Response:
    return page(
        request,
        "triggers.html",
        title="Triggers",
        # Reading webhook triggers is an admin's (as over REST): their URLs and filters.
        webhooks=lg.webhooks.list() if who.can("admin") else None,
        schedules=lg.schedules.list(),
        pollers=[p.to_dict() for p in lg.pollers.list()],
    )


@router.get("/triggers/{kind}/{row_id}", response_class=HTMLResponse)
def trigger(request: Request, kind: str, row_id: str, who: Viewer, lg: Lockgate) -> Response:
    if kind == "webhooks" and not who.can("admin"):
        viewing(Role.admin)(request)  # refused as over REST
    row = _service(lg, kind).get(row_id)
    shown = row.to_dict()
    upcoming: list[float] = []
    if kind == "schedules" and row.enabled:
        tick = row.next_fire_at
        for _ in range(5):
            upcoming.append(tick)
            tick = next_fire(row.cron, row.timezone, row.interval_seconds, tick, tick)
    return page(
        request,
        "trigger.html",
        title=f"{kind[:-1].capitalize()} {row_id}",
        kind=kind,
        row=shown,
        url=f"{request.base_url}hooks/{row_id}" if kind == "webhooks" else None,
        header=HEADERS.get(shown.get("provider", ""), "") if kind == "webhooks" else None,
        signed=PROVIDERS[shown["provider"]].signed if kind == "webhooks" else None,
        deliveries=lg.deliveries(row_id, 50),
        upcoming=upcoming,
    )


@router.post("/triggers/webhooks/{row_id}/rotate-secret", response_class=HTMLResponse)
def rotate(request: Request, row_id: str, act: Admin, lg: Lockgate) -> Response:
    overlap = float(act.form.get("overlap") or 3600)
    trigger, new = lg.webhooks.rotate_secret(
        row_id, overlap_seconds=overlap, actor=act.person.subject
    )
    # The new secret is in this answer only (not a redirect: it must not land in a URL).
    return page(
        request,
        "rotated.html",
        201,
        title=f"New secret for trigger {row_id}",
        trigger=trigger,
        signed=PROVIDERS[trigger.provider].signed,
        secret=new,
        url=f"{request.base_url}hooks/{row_id}",
    )


@router.post("/triggers/{kind}/{row_id}/{action}")
def act(kind: str, row_id: str, action: str, act: Admin, lg: Lockgate) -> Response:
    service = _service(lg, kind)
    if action not in ("pause", "resume", "delete"):
        raise NotFound(f"no action {action!r} (pause, resume or delete)")
    getattr(service, action)(row_id, actor=act.person.subject)
    if action == "delete":
        return back("/triggers", f"deleted {kind[:-1]} {row_id}")
    return back(f"/triggers/{kind}/{row_id}", f"{action}d")


@router.post("/deliveries/{delivery_id}/redeliver")
def redeliver(delivery_id: int, act: Admin, lg: Lockgate) -> Response:
    outcome = lg.webhooks.redeliver(delivery_id, actor=act.person.subject)
    delivery_of = lg.webhooks.delivery(delivery_id).trigger_id
    runs = ", ".join(outcome.get("run_ids") or []) or "no run"
    why = outcome.get("error") or outcome.get("reason")
    note = f"delivery {delivery_id} processed again: {outcome['status']}, {runs}"
    return back(f"/triggers/webhooks/{delivery_of}", note + (f" ({why})" if why else ""))
