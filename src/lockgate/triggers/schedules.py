"""Cron and interval schedules: each tick starts one run, however many schedulers run.

A tick's run is started with the idempotency key ``schedule:<id>:<tick>`` (a unique
constraint), then the schedule is advanced by compare-and-set; a scheduler that dies between
the two leaves the tick due, and the next one starts nothing new and advances it.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import croniter
from pydantic import Field

from lockgate.core.periodic import every
from lockgate.core.statuses import DeliveryStatus
from lockgate.engine.launcher import RunStarter
from lockgate.errors import ParamsError
from lockgate.records import ScheduleRecord
from lockgate.store import Store
from lockgate.store.deliveries import Deliver
from lockgate.store.schedules import ScheduleStore
from lockgate.triggers.firing import Plan, fire, plan_run
from lockgate.triggers.managed import Managed
from lockgate.triggers.spec import Spec

#: A tick handled later than this after its time counts as missed (downtime).
MISFIRE_GRACE = 60.0
#: How often a scheduler looks for due ticks.
CHECK_INTERVAL = 0.5


def next_fire(
    cron: str | None, timezone: str, interval: float | None, anchor: float, after: float
) -> float:
    """The first tick strictly after ``after``: by ``cron`` in ``timezone``, or every
    ``interval`` seconds counted from ``anchor`` (a previous tick)."""
    if cron:
        start = datetime.fromtimestamp(after, ZoneInfo(timezone))
        seconds_first = len(cron.split()) == 6
        return float(croniter(cron, start, second_at_beginning=seconds_first).get_next(float))
    assert interval
    if after < anchor:
        return anchor
    return anchor + (math.floor((after - anchor) / interval) + 1) * interval


#: The fields of a cron expression and what each takes (a sixth, first, is the second).
CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat"),
)


def cron_problems(cron: str) -> list[str]:
    """What is wrong with a cron expression, naming each bad field (``61 * * * *``: the
    minute, 0-59); empty when it is good."""
    parts = cron.split()
    if len(parts) not in (5, 6):
        return [
            f"cron: {cron!r} has {len(parts)} field{'' if len(parts) == 1 else 's'}; a cron "
            "expression has 5 (minute hour "
            "day-of-month month day-of-week), or 6 with the second first"
        ]
    fields = (("second", "0-59"), *CRON_FIELDS) if len(parts) == 6 else CRON_FIELDS
    seconds = len(parts) == 6
    found = []
    for i, (part, (name, allowed)) in enumerate(zip(parts, fields, strict=True)):
        alone = ["*"] * len(parts)
        alone[i] = part
        if not croniter.is_valid(" ".join(alone), second_at_beginning=seconds):
            found.append(f"cron: {cron!r}: the {name} field {part!r} is not valid ({allowed})")
    if not found and not croniter.is_valid(cron, second_at_beginning=seconds):
        found.append(f"cron: {cron!r} is not a valid cron expression")
    return found


def _check(cron: str | None, interval: float | None, timezone: str, misfire: str) -> None:
    """Refuse a schedule's timing with every problem listed."""
    problems = []
    if (cron is None) == (interval is None):
        problems.append("give exactly one of cron or interval_seconds")
    if cron is not None:
        problems.extend(cron_problems(cron))
    if interval is not None and interval < 1:
        problems.append("interval_seconds: at least 1")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: {timezone!r} is not an IANA time zone")
    if misfire not in ("skip", "run_once"):
        problems.append("misfire: skip or run_once")
    if problems:
        raise ParamsError(problems)


class ScheduleSpec(Spec):
    """A cron or interval schedule: each tick starts one run."""

    cron: str | None = Field(
        None,
        max_length=200,
        title="Cron",
        description="A 5-field cron expression (6 fields: seconds first).",
        examples=["0 3 * * 1-5"],
    )
    interval_seconds: float | None = Field(
        None,
        title="Or every (seconds)",
        description="Or: every this many seconds (a cron or an interval, not both).",
    )
    timezone: str = Field(
        "UTC", max_length=64, title="Time zone", description="The IANA time zone of the cron."
    )
    misfire: str = Field(
        "skip",
        max_length=20,
        title="After downtime",
        description="A tick missed while down: skip it, or run_once for those missed.",
        json_schema_extra={"enum": ["skip", "run_once"]},
    )

    flags = {"interval_seconds": "--every"}


class Schedules(Managed[ScheduleRecord, ScheduleSpec]):
    """Creates schedules and fires their ticks."""

    kind = "schedule"
    spec = ScheduleSpec
    rows: ScheduleStore

    def __init__(self, store: Store, starter: RunStarter) -> None:
        self._db = store
        self._starter = starter
        self.rows = ScheduleStore(store)
        self.log = structlog.get_logger("lockgate.scheduler")

    def _create(self, spec: ScheduleSpec) -> ScheduleRecord:
        """A schedule; refused with every problem listed."""
        _check(spec.cron, spec.interval_seconds, spec.timezone, spec.misfire)
        now = time.time()
        row: dict[str, Any] = {**spec.model_dump(), "id": secrets.token_hex(8), "enabled": True}
        row["next_fire_at"] = next_fire(spec.cron, spec.timezone, spec.interval_seconds, now, now)
        return self.rows.create(row, self.audit("create", {"pipeline": spec.pipeline}))

    def _update(self, schedule_id: str, changes: dict[str, Any]) -> ScheduleRecord:
        """Change a schedule (a cron replaces an interval and back); every problem listed.
        A new timing starts from now: the next tick is recomputed."""
        old = self.get(schedule_id)
        cron, interval = changes.pop("cron", None), changes.pop("interval_seconds", None)
        timezone = changes.pop("timezone", None)
        timed = cron is not None or interval is not None
        new_cron = cron if timed else old.cron
        new_interval = interval if timed else old.interval_seconds
        new_zone = timezone or old.timezone
        _check(new_cron, new_interval, new_zone, changes.get("misfire") or old.misfire)
        values: dict[str, Any] = dict(changes)
        if timed or timezone is not None:
            now = time.time()
            values.update(
                cron=new_cron,
                interval_seconds=new_interval,
                timezone=new_zone,
                next_fire_at=next_fire(new_cron, new_zone, new_interval, now, now),
            )
        if not values:
            return old
        audit = self.audit("update", {"fields": sorted(values)})
        return self.rows.update(schedule_id, values, audit)

    def tick(self, now: float | None = None) -> int:
        """Fire every due schedule once; the number of runs started."""
        now = time.time() if now is None else now
        started = 0
        for schedule in self.rows.due(now):
            tick = schedule.next_fire_at
            missed = now - tick > MISFIRE_GRACE
            event = {"tick": tick, "due_at": tick, "fired_at": now}
            if missed and schedule.misfire != "run_once":
                self.log.warning("missed tick skipped", schedule=schedule.id, tick=tick)
                plan: Plan = (
                    None,
                    DeliveryStatus.REJECTED,
                    "missed tick skipped (misfire policy: skip)",
                )
            else:
                plan = plan_run(
                    self._starter,
                    pipeline=schedule.pipeline,
                    namespace=schedule.namespace,
                    params=schedule.params,
                    context={"event": event},
                    requested_by=f"schedule:{schedule.id}",
                    idempotency_key=f"schedule:{schedule.id}:{tick!r}",
                )
            op = Deliver(schedule.id, f"tick:{tick!r}", event, None, *plan, source="schedule")
            started += fire(self._db, self._starter, op)
            following = next_fire(
                schedule.cron, schedule.timezone, schedule.interval_seconds, tick, max(now, tick)
            )
            self.rows.advance(schedule.id, tick, following)
        return started

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due ticks until ``stop`` is set."""
        await every(stop, CHECK_INTERVAL, self.tick, "scheduler pass")
