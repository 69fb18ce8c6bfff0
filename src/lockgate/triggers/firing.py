"""A schedule tick or a poller's new commit, stored as a delivery with the run it starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockgate.errors import LockgateError
from lockgate.store.deliveries import Deliver
from lockgate.store.runs import CreateRun

if TYPE_CHECKING:
    from lockgate.app import App


def fire(
    app: App,
    *,
    source: str,
    trigger_id: str,
    key: str,
    event: Any,
    pipeline: str,
    namespace: str,
    params: Any,
    idempotency_key: str,
    refused: str | None = None,
) -> bool:
    """Store the firing once per ``(trigger_id, key)`` and start its run in the same
    transaction. A firing whose run is refused (bad params, unknown pipeline) is stored
    FAILED with the reason; ``refused`` stores it REJECTED without trying (a skipped tick).
    True when this call started a run."""
    create: CreateRun | None = None
    status, error = "DONE", refused
    if refused is not None:
        status = "REJECTED"
    else:
        try:
            create = app.prepare_run(
                pipeline,
                params,
                namespace=namespace,
                requested_by=f"{source}:{trigger_id}",
                idempotency_key=idempotency_key,
            )
        except LockgateError as exc:
            status, error = "FAILED", exc.message
    op = Deliver(trigger_id, key, event, None, create, status, error, source)
    _, _, _, created, run = app.store.apply(op)
    if create is not None and run is not None:
        app.adopt_created(create, run, created)
    return bool(created and run is not None)
