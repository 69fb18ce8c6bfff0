"""Triggers: webhooks (the URL and headers for the provider), schedules with their next
ticks, pollers; each one's deliveries with their outcome; create, edit, pause, resume,
delete, redeliver."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from lockgate.access.tokens import Role
from lockgate.client import Client
from lockgate.console.core import (
    Admin,
    AdminPage,
    Lockgate,
    Viewer,
    back,
    console_router,
    page,
    viewing,
)
from lockgate.console.forms import Field, fields_of, values_from
from lockgate.errors import NotFound, ParamsError
from lockgate.records import TriggerRecord
from lockgate.triggers.catalog import KINDS
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.schedules import next_fire
from lockgate.triggers.spec import Kind

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
#: Each kind by the name of its pages (its service's): ``/triggers/schedules/...``.
BY_PAGE = {k.service: k for k in KINDS.values()}


def _kind(kind: str) -> Kind[Any, Any]:
    found = BY_PAGE.get(kind)
    if found is None:
        raise NotFound(f"no kind of trigger {kind!r} (one of {', '.join(BY_PAGE)})")
    return found


def _fields(kind: str, current: Mapping[str, Any] | None = None) -> list[Field]:
    """The form's fields: the kind's spec, as the REST API takes it (the same fields,
    limits and defaults); for an edit, without what cannot change, showing ``current``."""
    spec = _kind(kind).spec
    schema = spec.model_json_schema()
    if current is None:
        return fields_of(schema)
    props = {
        name: {**prop, "default": current.get(name)}
        for name, prop in schema["properties"].items()
        if name not in spec.fixed
    }
    return fields_of({**schema, "properties": props})


def _service(client: Client, kind: str) -> Any:
    return getattr(client, _kind(kind).service)


@router.get("/triggers", response_class=HTMLResponse)
def triggers(request: Request, who: Viewer) -> Response:
    client = who.client
    return page(
        request,
        "triggers.html",
        title="Triggers",
        # Reading webhook triggers is an admin's (as over REST): their URLs and filters.
        webhooks=client.webhooks.list() if who.can("admin") else None,
        schedules=client.schedules.list(),
        pollers=[p.to_dict() for p in client.pollers.list()],
        queues=[q.to_dict() for q in client.queues.list()],
    )


@router.get("/triggers/{kind}/new", response_class=HTMLResponse)
def new(request: Request, kind: str, who: AdminPage) -> Response:
    return page(
        request,
        "trigger_form.html",
        title=f"New {kind[:-1]}",
        action=f"/triggers/{kind}/new",
        fields=_fields(kind),
        back_to="/triggers",
        note="Leave the secret empty to have one made: it is shown once, on the next page."
        if kind == "webhooks"
        else None,
    )


@router.post("/triggers/{kind}/new", response_class=HTMLResponse)
def create(request: Request, kind: str, act: Admin) -> Response:
    values = values_from(_fields(kind), act.form)
    known = PROVIDERS.get(values.get("provider", "")) if kind == "webhooks" else None
    signed = known is not None and known.signed
    made_secret = signed and not values.get("secret")
    if made_secret:
        values["secret"] = secrets.token_urlsafe(32)
    made = _service(act.person.client, kind).create(values)
    if not isinstance(made, TriggerRecord):
        return back(f"/triggers/{kind}/{made.id}", f"{_kind(kind).name} created")
    if not made_secret and made.url_token is None:
        return back(f"/triggers/webhooks/{made.id}", "webhook trigger created")
    # A secret made here, or an unsigned provider's URL token: in this answer only.
    return page(
        request,
        "rotated.html",
        201,
        title=f"Webhook trigger {made.id} created",
        trigger=made,
        signed=signed,
        secret=values["secret"] if made_secret else made.url_token,
        url=f"{request.base_url}hooks/{made.id}",
    )


@router.get("/triggers/{kind}/{row_id}/edit", response_class=HTMLResponse)
def edit(request: Request, kind: str, row_id: str, who: AdminPage) -> Response:
    row = _service(who.client, kind).get(row_id)
    return page(
        request,
        "trigger_form.html",
        title=f"Edit {kind[:-1]} {row_id}",
        action=f"/triggers/{kind}/{row_id}/edit",
        fields=_fields(kind, row.to_dict()),
        back_to=f"/triggers/{kind}/{row_id}",
        note=None,
    )


@router.post("/triggers/{kind}/{row_id}/edit")
def update(kind: str, row_id: str, act: Admin) -> Response:
    service = _service(act.person.client, kind)
    current = service.get(row_id).to_dict()
    fields = _fields(kind, current)
    posted = values_from(fields, act.form)
    for f in fields:  # an emptied field clears the value, not leaves it unchanged
        if f.name in posted or current.get(f.name) in (None, "", [], {}):
            continue
        if f.kind in ("list", "json"):
            posted[f.name] = {} if f.kind == "json" else []
        elif f.name == "credentials":
            posted[f.name] = ""  # no credentials any more
    changes = {k: v for k, v in posted.items() if v != current.get(k)}
    if kind == "schedules":
        if "cron" not in posted and "interval_seconds" not in posted:
            raise ParamsError(["cron or interval_seconds: one is needed"])
        if posted.get("cron") != current.get("cron") or "interval_seconds" in changes:
            # A cron replaces an interval and back.
            changes["cron"] = posted.get("cron")
            changes["interval_seconds"] = posted.get("interval_seconds")
    if not changes:
        return back(f"/triggers/{kind}/{row_id}", "nothing changed")
    service.update(row_id, changes)
    return back(f"/triggers/{kind}/{row_id}", f"changed {', '.join(sorted(changes))}")


@router.get("/triggers/{kind}/{row_id}", response_class=HTMLResponse)
def trigger(request: Request, kind: str, row_id: str, who: Viewer) -> Response:
    if kind == "webhooks" and not who.can("admin"):
        viewing(Role.admin)(request)  # refused as over REST
    row = _service(who.client, kind).get(row_id)
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
        deliveries=who.client.deliveries.list(row_id, 50),
        upcoming=upcoming,
    )


@router.post("/triggers/webhooks/{row_id}/rotate-secret", response_class=HTMLResponse)
def rotate(request: Request, row_id: str, act: Admin) -> Response:
    overlap = float(act.form.get("overlap") or 3600)
    trigger, new = act.person.client.webhooks.rotate_secret(row_id, overlap_seconds=overlap)
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
def act(kind: str, row_id: str, action: str, act: Admin) -> Response:
    service = _service(act.person.client, kind)
    if action not in ("pause", "resume", "delete"):
        raise NotFound(f"no action {action!r} (pause, resume or delete)")
    getattr(service, action)(row_id)
    if action == "delete":
        return back("/triggers", f"deleted {kind[:-1]} {row_id}")
    return back(f"/triggers/{kind}/{row_id}", f"{action}d")


@router.post("/deliveries/{delivery_id}/redeliver")
def redeliver(delivery_id: int, act: Admin, lg: Lockgate) -> Response:
    outcome = act.person.client.deliveries.redeliver(delivery_id)
    delivery = lg.deliveries.delivery(delivery_id)
    runs = ", ".join(outcome.get("run_ids") or []) or "no run"
    why = outcome.get("error") or outcome.get("reason")
    note = f"delivery {delivery_id} processed again: {outcome['status']}, {runs}"
    kind = "queues" if delivery.source == "queue" else "webhooks"
    return back(f"/triggers/{kind}/{delivery.trigger_id}", note + (f" ({why})" if why else ""))
