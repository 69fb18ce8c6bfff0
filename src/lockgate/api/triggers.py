"""Trigger routes, made once for every kind in :data:`lockgate.triggers.catalog.KINDS`:
create (the kind's spec is the body), change (its change), list, read, pause, resume and
delete; and a trigger's deliveries, redelivery, and a webhook's secret rotation.

No ``from __future__ import annotations`` here: the routes made in :func:`_routes` take their
bodies and roles from variables, which FastAPI must see evaluated.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from lockgate.access.tokens import Role
from lockgate.api.deps import Admin, Strict, Viewer, position
from lockgate.core.cursor import encode_cursor
from lockgate.records import TriggerRecord
from lockgate.triggers.catalog import KINDS
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.spec import Kind

router = APIRouter(prefix="/api/v1")


def answer(kind: Kind[Any, Any], record: Any) -> dict[str, Any]:
    """A kind's record as the API answers it: a webhook trigger with the URL to give its
    provider (with its URL token, on the answer that creates it only)."""
    shown = dict(record.to_dict())
    if isinstance(record, TriggerRecord):
        token = shown.pop("url_token", None)
        shown["url"] = f"/hooks/{record.id}" + (f"?token={token}" if token else "")
    return shown


def _routes(kind: Kind[Any, Any]) -> None:
    """The routes of one kind of trigger, each through its service on the caller's client."""
    path, noun, spec, change = kind.path, kind.name, kind.spec, kind.spec.change()
    reader = Viewer if kind.viewers_read else Admin

    def service(caller: Any) -> Any:
        return getattr(caller.client, kind.service)

    @router.post(f"/{path}", status_code=201, summary=f"Create a {noun}", name=f"create_{noun}")
    def create(body: spec, caller: Admin) -> dict[str, Any]:  # type: ignore[valid-type]
        return answer(kind, service(caller).create(body))

    @router.patch(f"/{path}/{{row_id}}", summary=f"Change a {noun}", name=f"update_{noun}")
    def update(row_id: str, body: change, caller: Admin) -> dict[str, Any]:  # type: ignore[valid-type]
        return answer(kind, service(caller).update(row_id, body))

    @router.get(f"/{path}", summary=kind.title, name=f"list_{noun}s")
    def list_(caller: reader) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        return [answer(kind, r) for r in service(caller).list()]

    @router.get(f"/{path}/{{row_id}}", summary=f"One {noun}", name=f"show_{noun}")
    def show(row_id: str, caller: reader) -> dict[str, Any]:  # type: ignore[valid-type]
        return answer(kind, service(caller).get(row_id))

    @router.post(
        f"/{path}/{{row_id}}/pause",
        summary=f"Pause a {noun} (it starts nothing until resumed)",
        name=f"pause_{noun}",
    )
    def pause(row_id: str, caller: Admin) -> dict[str, Any]:
        return answer(kind, service(caller).pause(row_id))

    @router.post(
        f"/{path}/{{row_id}}/resume", summary=f"Resume a paused {noun}", name=f"resume_{noun}"
    )
    def resume(row_id: str, caller: Admin) -> dict[str, Any]:
        return answer(kind, service(caller).resume(row_id))

    @router.delete(
        f"/{path}/{{row_id}}",
        summary=f"Delete a {noun} and its deliveries",
        name=f"delete_{noun}",
    )
    def delete(row_id: str, caller: Admin) -> dict[str, Any]:
        service(caller).delete(row_id)
        return {"deleted": row_id}


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
def rotate_secret(row_id: str, caller: Admin, body: Rotation | None = None) -> dict[str, Any]:
    body = body or Rotation.model_validate({})
    trigger, new = caller.client.webhooks.rotate_secret(
        row_id, secret=body.secret, overlap_seconds=body.overlap_seconds
    )
    if PROVIDERS[trigger.provider].signed:
        # The new secret is in this answer only, unless the caller chose it.
        return {**trigger.to_dict(), "url": f"/hooks/{trigger.id}", "new_secret": new}
    return {**trigger.to_dict(), "url": f"/hooks/{trigger.id}?token={new}"}


@router.get(
    "/triggers/{trigger_id}/deliveries",
    summary="Firings of a webhook trigger, a schedule, a poller or a queue, newest first",
)
def list_deliveries(
    trigger_id: str,
    caller: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    before = position(cursor, 1)
    found = caller.client.deliveries.list(trigger_id, limit, int(before[0]) if before else None)
    following = encode_cursor(found[-1].id) if len(found) == limit else None
    # A delivery's payload is the sender's whole body (a push's author emails, a message's
    # headers): operators and up read it; viewers see the normalised event and outcome.
    shown = [d.to_dict() for d in found]
    if Role.operator.value not in caller.roles:
        shown = [{**d, "payload": None, "payload_hidden": True} for d in shown]
    return {"deliveries": shown, "next": following}


@router.post("/deliveries/{delivery_id}/redeliver", summary="Process a delivery again")
def redeliver(delivery_id: int, caller: Admin) -> dict[str, Any]:
    return caller.client.deliveries.redeliver(delivery_id)


for _kind in KINDS.values():
    _routes(_kind)
