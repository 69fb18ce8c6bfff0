"""The kinds of trigger lockgate has. A new kind is a service module with its spec
(:class:`lockgate.triggers.spec.Spec`), its service on the App, and one entry here: its REST
routes, REST client, console forms and command group follow from it."""

from __future__ import annotations

from typing import Any

from lockgate.records import PollerRecord, QueueRecord, ScheduleRecord, TriggerRecord
from lockgate.triggers.pollers import PollerSpec
from lockgate.triggers.queues import QueueSpec
from lockgate.triggers.schedules import ScheduleSpec
from lockgate.triggers.spec import Kind
from lockgate.triggers.webhooks import WebhookSpec

WEBHOOKS = Kind(
    name="trigger",
    path="triggers",
    service="webhooks",
    spec=WebhookSpec,
    record=TriggerRecord,
    # Reading one is for admins too: its URL and filters.
    viewers_read=False,
    title="Webhook triggers",
    help="Webhook triggers: a git provider's events start runs.",
)
SCHEDULES = Kind(
    name="schedule",
    path="schedules",
    service="schedules",
    spec=ScheduleSpec,
    record=ScheduleRecord,
    viewers_read=True,
    title="Schedules",
    help="Schedules: a cron expression or an interval starts runs.",
)
POLLERS = Kind(
    name="poller",
    path="pollers",
    service="pollers",
    spec=PollerSpec,
    record=PollerRecord,
    viewers_read=True,
    title="Pollers",
    help="Pollers: a new commit in a polled git repository starts a run.",
)
QUEUES = Kind(
    name="queue",
    path="queues",
    service="queues",
    spec=QueueSpec,
    record=QueueRecord,
    viewers_read=True,
    title="Queue triggers",
    help="Queue triggers: each message in a Redis stream or a RabbitMQ queue starts a run.",
)

#: Every kind, by path.
KINDS: dict[str, Kind[Any, Any]] = {k.path: k for k in (WEBHOOKS, SCHEDULES, POLLERS, QUEUES)}
