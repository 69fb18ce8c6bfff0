"""The one path from a trigger's event to a stored delivery and the run it starts.

Webhooks, schedules and pollers (and any source to come) all plan their run with
:func:`plan_run` and store it with :class:`~lockgate.store.deliveries.Deliver`: the delivery
row and its run commit together, once per ``(trigger, key)``. So a bad params template or a
refused run ends the same way whatever fired it: the delivery is FAILED with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from lockgate.core.statuses import DeliveryStatus
from lockgate.core.templates import TemplateError, render
from lockgate.engine.launcher import RunStarter
from lockgate.errors import LockgateError
from lockgate.records import RunRecord
from lockgate.store import Store
from lockgate.store.deliveries import Deliver
from lockgate.store.runs import CreateRun

#: (the run to start, the delivery's status, why it starts none)
Plan = tuple[CreateRun | None, DeliveryStatus, str | None]


def plan_run(
    starter: RunStarter,
    *,
    pipeline: str,
    namespace: str,
    params: Any,
    context: Mapping[str, Any],
    requested_by: str,
    idempotency_key: str,
    traceparent: str | None = None,
) -> Plan:
    """Render a trigger's params template with ``context`` (``event``, ``payload``...) and
    check the run it starts. A template that does not render, or a run that is refused
    (bad params, unknown pipeline), plans a FAILED delivery with the reason."""
    try:
        rendered = render(params, dict(context))
        create = starter.prepare_run(
            pipeline,
            rendered,
            namespace=namespace,
            requested_by=requested_by,
            idempotency_key=idempotency_key,
            traceparent=traceparent,
        )
    except TemplateError as exc:
        return None, DeliveryStatus.FAILED, f"params: {exc}"
    except LockgateError as exc:
        return None, DeliveryStatus.FAILED, exc.message
    return create, DeliveryStatus.DONE, None


def delivery_run_key(trigger_id: str, key: str) -> str:
    """The idempotency key of the run a delivery starts: hashed, because a trigger id is
    not for viewers to read (who can read run keys) and the key must not reveal it."""
    return "delivery:" + hashlib.sha256(f"{trigger_id}:{key}".encode()).hexdigest()[:40]


def adopt(starter: RunStarter, op: Deliver, outcome: Any) -> None:
    """After a delivery's write committed: hand the run it created to a local worker."""
    if isinstance(outcome, BaseException):
        return
    created, run = outcome[3], outcome[4]
    if op.create is not None and isinstance(run, RunRecord):
        starter.adopt_created(op.create, run, created)


def fire(store: Store, starter: RunStarter, op: Deliver) -> bool:
    """Store a firing and the run it starts in one transaction; True when this call started
    a run (False for a duplicate, a refusal, or a firing stored before)."""
    outcome = store.apply(op)
    adopt(starter, op, outcome)
    _, _, _, created, run = outcome
    return bool(created and run is not None)
