"""Trigger routes: webhook triggers and their deliveries, schedules, pollers, queues.

Each kind has its own create route; reading one, pausing, resuming and deleting are the same
for all three (:func:`_manage`). No ``from __future__ import annotations`` here: the routes
made in :func:`_manage` take their role from a variable, which FastAPI must see evaluated.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from lockgate.access.tokens import Role
from lockgate.api.deps import Admin, Lockgate, Strict, Viewer, position
from lockgate.app import App
from lockgate.core.cursor import encode_cursor
from lockgate.records import QueueRecord
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.sources import BROKERS
from lockgate.triggers.webhook_config import MIN_SECRET

router = APIRouter(prefix="/api/v1")


def _manage(path: str, noun: str, service: Callable[[App], Any], reader: Any) -> None:
    """``GET /<path>/{id}`` (for ``reader``), and ``POST .../pause``, ``POST .../resume``
    and ``DELETE`` (for admins), each through the service's own method."""

    @router.get(f"/{path}/{{row_id}}", summary=f"One {noun}", name=f"show_{noun}")
    def show(row_id: str, caller: reader, lg: Lockgate) -> dict[str, Any]:
        return dict(service(lg).get(row_id).to_dict())

    @router.post(
        f"/{path}/{{row_id}}/pause", summary=f"Pause a {noun} (it starts nothing until resumed)"
    )
    def pause(row_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
        return dict(service(lg).pause(row_id, actor=caller.name).to_dict())

    @router.post(f"/{path}/{{row_id}}/resume", summary=f"Resume a paused {noun}")
    def resume(row_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
        return dict(service(lg).resume(row_id, actor=caller.name).to_dict())

    @router.delete(f"/{path}/{{row_id}}", summary=f"Delete a {noun} and its deliveries")
    def delete(row_id: str, caller: Admin, lg: Lockgate) -> dict[str, Any]:
        service(lg).delete(row_id, actor=caller.name)
        return {"deleted": row_id}


class TriggerBody(Strict):
    """A webhook trigger to create (the console's form is made from it too)."""

    provider: str = Field(
        max_length=20, title="Provider", json_schema_extra={"enum": list(sorted(PROVIDERS))}
    )
    pipeline: str = Field(max_length=401, title="Pipeline")
    namespace: str = Field("default", max_length=200, title="Namespace")
    secret: str | None = Field(
        None,
        max_length=500,
        title="Secret",
        description=f"What the provider signs with, at least {MIN_SECRET} characters. Gerrit "
        "signs nothing: its trigger gets a URL token instead.",
        json_schema_extra={"format": "password"},
    )
    events: list[str] = Field(
        default_factory=list, max_length=50, title="Events", description="Empty: every event."
    )
    branches: list[str] = Field(
        default_factory=list, max_length=50, title="Branches", description="Names or globs."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="Params",
        description="The run's params as JSON; values may use placeholders, e.g. "
        '{"commit": "${event.commit}"}',
    )
    allow_ips: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Allowed addresses",
        description="Addresses or networks deliveries may come from (empty: any).",
    )


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


class TriggerChange(Strict):
    """What to change of a webhook trigger (fields left out stay as they are)."""

    pipeline: str | None = Field(None, max_length=401)
    namespace: str | None = Field(None, max_length=200)
    events: list[str] | None = Field(None, max_length=50)
    branches: list[str] | None = Field(None, max_length=50)
    params: dict[str, Any] | None = None
    allow_ips: list[str] | None = Field(None, max_length=50)


@router.patch("/triggers/{row_id}", summary="Change a webhook trigger (not its secret)")
def update_trigger(row_id: str, body: TriggerChange, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return lg.webhooks.update(row_id, **changes, actor=caller.name).to_dict()


class Rotation(Strict):
    """A new secret, and how long the old one still verifies."""

    secret: str | None = Field(
        None, max_length=500, description="The new secret (default: a new random one)."
    )
    overlap_seconds: float = Field(
        3600.0, description="How long the old secret still verifies (0: it stops at once)."
    )


@router.post(
    "/triggers/{row_id}/rotate-secret",
    summary="Give a webhook trigger a new secret; the old one verifies for a while",
)
def rotate_secret(
    row_id: str, caller: Admin, lg: Lockgate, body: Rotation | None = None
) -> dict[str, Any]:
    body = body or Rotation.model_validate({})
    trigger, new = lg.webhooks.rotate_secret(
        row_id, secret=body.secret, overlap_seconds=body.overlap_seconds, actor=caller.name
    )
    if PROVIDERS[trigger.provider].signed:
        # The new secret is in this answer only, unless the caller chose it.
        return {**trigger.to_dict(), "url": f"/hooks/{trigger.id}", "new_secret": new}
    return {**trigger.to_dict(), "url": f"/hooks/{trigger.id}?token={new}"}


@router.get("/triggers", summary="Triggers (secrets masked)")
def list_triggers(caller: Admin, lg: Lockgate) -> list[dict[str, Any]]:
    return [t.to_dict() for t in lg.webhooks.list()]


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
    before = position(cursor, 1)
    found = lg.deliveries(trigger_id, limit, int(before[0]) if before else None)
    following = encode_cursor(found[-1].id) if len(found) == limit else None
    # A delivery's payload is the sender's whole body (a push's author emails, a message's
    # headers): operators and up read it; viewers see the normalised event and outcome.
    shown = [d.to_dict() for d in found]
    if Role.operator.value not in caller.roles:
        shown = [{**d, "payload": None, "payload_hidden": True} for d in shown]
    return {"deliveries": shown, "next": following}


class ScheduleBody(Strict):
    """A cron or interval schedule to create (the console's form is made from it too)."""

    pipeline: str = Field(max_length=401, title="Pipeline")
    namespace: str = Field("default", max_length=200, title="Namespace")
    cron: str | None = Field(None, max_length=200, title="Cron", examples=["0 3 * * 1-5"])
    interval_seconds: float | None = Field(
        None, title="Or every (seconds)", description="A cron or an interval, not both."
    )
    timezone: str = Field("UTC", max_length=64, title="Time zone")
    misfire: Literal["skip", "run_once"] = Field(
        "skip", title="After downtime", description="Skip the ticks missed, or run once for them."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="Params",
        description="The run's params as JSON; values may use placeholders, e.g. "
        '{"commit": "${event.commit}"}',
    )


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


class ScheduleChange(Strict):
    """What to change of a schedule (fields left out stay as they are)."""

    pipeline: str | None = Field(None, max_length=401)
    namespace: str | None = Field(None, max_length=200)
    cron: str | None = Field(None, max_length=200)
    interval_seconds: float | None = None
    timezone: str | None = Field(None, max_length=64)
    misfire: Literal["skip", "run_once"] | None = None
    params: dict[str, Any] | None = None


@router.patch("/schedules/{row_id}", summary="Change a schedule (a new timing starts now)")
def update_schedule(
    row_id: str, body: ScheduleChange, caller: Admin, lg: Lockgate
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return lg.schedules.update(row_id, **changes, actor=caller.name).to_dict()


@router.get("/schedules", summary="Schedules with their next fire times")
def list_schedules(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [x.to_dict() for x in lg.schedules.list()]


class PollerBody(Strict):
    """A git repository to poll (the console's form is made from it too)."""

    pipeline: str = Field(max_length=401, title="Pipeline")
    namespace: str = Field("default", max_length=200, title="Namespace")
    repository: str = Field(
        max_length=2000, title="Repository", examples=["https://git.example.com/app.git"]
    )
    refs: list[str] = Field(
        default_factory=lambda: ["refs/heads/*"],
        max_length=50,
        title="Refs",
        json_schema_extra={"default": ["refs/heads/*"]},
    )
    interval_seconds: float = Field(60.0, title="Every (seconds)")
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="Params",
        description="The run's params as JSON; values may use placeholders, e.g. "
        '{"commit": "${event.commit}"}',
    )
    credentials: str | None = Field(
        None,
        max_length=200,
        title="Credentials",
        description="The name of a secret (LOCKGATE_SECRET_<NAME>) holding user:password; "
        "never part of the URL.",
    )


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
        credentials=body.credentials,
    )
    return poller.to_dict()


class PollerChange(Strict):
    """What to change of a poller (fields left out stay as they are)."""

    pipeline: str | None = Field(None, max_length=401)
    namespace: str | None = Field(None, max_length=200)
    repository: str | None = Field(None, max_length=2000)
    refs: list[str] | None = Field(None, max_length=50)
    interval_seconds: float | None = None
    params: dict[str, Any] | None = None
    credentials: str | None = Field(None, max_length=200, description='"" drops them.')


@router.patch("/pollers/{row_id}", summary="Change a poller (a new repository starts over)")
def update_poller(row_id: str, body: PollerChange, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return lg.pollers.update(row_id, **changes, actor=caller.name).to_dict()


@router.get("/pollers", summary="Pollers with their last-seen commits and errors")
def list_pollers(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [p.to_dict() for p in lg.pollers.list()]


class QueueBody(Strict):
    """A message queue whose messages start runs (a Redis stream or a RabbitMQ queue)."""

    pipeline: str = Field(max_length=401, title="Pipeline")
    namespace: str = Field("default", max_length=200, title="Namespace")
    broker: str = Field(max_length=20, title="Broker", json_schema_extra={"enum": list(BROKERS)})
    url: str = Field(
        max_length=2000, title="Broker URL", examples=["redis://queue.internal:6379/0"]
    )
    source: str = Field(
        max_length=200, title="Stream or queue", description="The stream or queue read."
    )
    dead_letter: str | None = Field(
        None,
        max_length=200,
        title="Dead-letter stream",
        description="Where messages that cannot start a run go (default: <stream>.dead).",
    )
    consumer_group: str = Field("lockgate", max_length=200, title="Consumer group")
    match: dict[str, list[str]] = Field(
        default_factory=dict,
        title="Match",
        description="Paths into the message and the globs they must match, e.g. "
        '{"headers.env": ["prod"]}; others are REJECTED.',
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="Params",
        description="The run's params as JSON; values may use placeholders, e.g. "
        '{"version": "${message.body.version}"}',
    )
    batch_size: int = Field(100, title="Batch size", description="Messages committed together.")
    claim_after: float = Field(
        30.0, title="Claim after (seconds)", description="A dead consumer's messages move then."
    )
    credentials: str | None = Field(
        None,
        max_length=200,
        title="Credentials",
        description="The name of a secret (LOCKGATE_SECRET_<NAME>) holding the password.",
    )


def make_queue(lg: App, body: QueueBody, actor: str) -> QueueRecord:
    """The queue trigger ``body`` describes (for the REST route and the console's form)."""
    fields = body.model_dump()
    pipeline, broker, url, source = (fields.pop(k) for k in ("pipeline", "broker", "url", "source"))
    return lg.queues.create(pipeline, broker, url, source, **fields, actor=actor)


@router.post("/queues", status_code=201, summary="Start runs from a message queue's messages")
def create_queue(body: QueueBody, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    return make_queue(lg, body, caller.name).to_dict()


class QueueChange(Strict):
    """What to change of a queue trigger (fields left out stay as they are)."""

    pipeline: str | None = Field(None, max_length=401)
    namespace: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2000)
    source: str | None = Field(None, max_length=200)
    dead_letter: str | None = Field(None, max_length=200)
    consumer_group: str | None = Field(None, max_length=200)
    match: dict[str, list[str]] | None = None
    params: dict[str, Any] | None = None
    batch_size: int | None = None
    claim_after: float | None = None
    credentials: str | None = Field(None, max_length=200, description='"" drops them.')


@router.patch("/queues/{row_id}", summary="Change a queue trigger")
def update_queue(row_id: str, body: QueueChange, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return lg.queues.update(row_id, **changes, actor=caller.name).to_dict()


@router.get("/queues", summary="Queue triggers, with the last error of their consumers")
def list_queues(caller: Viewer, lg: Lockgate) -> list[dict[str, Any]]:
    return [q.to_dict() for q in lg.queues.list()]


@router.post("/deliveries/{delivery_id}/redeliver", summary="Process a delivery again")
def redeliver(delivery_id: int, caller: Admin, lg: Lockgate) -> dict[str, Any]:
    return lg.webhooks.redeliver(delivery_id, actor=caller.name)


# Trigger secrets are for admins only: reading a trigger is too (its URL and filters).
_manage("triggers", "trigger", lambda lg: lg.webhooks, Admin)
_manage("schedules", "schedule", lambda lg: lg.schedules, Viewer)
_manage("pollers", "poller", lambda lg: lg.pollers, Viewer)
_manage("queues", "queue", lambda lg: lg.queues, Viewer)
