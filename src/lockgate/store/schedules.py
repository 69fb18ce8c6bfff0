"""Schedules in the store: due ones, and the compare-and-set that makes each tick fire once."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select, update

from lockgate.errors import NotFound
from lockgate.store import schema as s
from lockgate.store.base import MAX_PAGE, Store
from lockgate.store.records import ScheduleRecord


class ScheduleStore:
    """CRUD for schedules and the tick hand-off between schedulers."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, row: dict[str, Any]) -> ScheduleRecord:
        """Insert a schedule."""
        row = {**row, "created_at": time.time()}
        self._store.write(lambda c: c.execute(s.schedules.insert().values(row)))
        return ScheduleRecord(**row)

    def all(self) -> list[ScheduleRecord]:
        """Every schedule, soonest first."""
        stmt = select(s.schedules).order_by(s.schedules.c.next_fire_at).limit(MAX_PAGE)
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [ScheduleRecord(**r._mapping) for r in rows]

    def get(self, schedule_id: str) -> ScheduleRecord:
        """One schedule."""
        stmt = select(s.schedules).where(s.schedules.c.id == schedule_id)
        row = self._store.read(lambda c: c.execute(stmt).first())
        if row is None:
            raise NotFound(f"no schedule {schedule_id!r}")
        return ScheduleRecord(**row._mapping)

    def delete(self, schedule_id: str) -> None:
        """Remove a schedule."""
        done = self._store.write(
            lambda c: c.execute(delete(s.schedules).where(s.schedules.c.id == schedule_id)).rowcount
        )
        if not done:
            raise NotFound(f"no schedule {schedule_id!r}")

    def due(self, now: float) -> list[ScheduleRecord]:
        """Enabled schedules whose next tick has come."""
        c = s.schedules.c
        stmt = select(s.schedules).where(c.next_fire_at <= now, c.enabled.is_(True)).limit(MAX_PAGE)
        return [
            ScheduleRecord(**r._mapping) for r in self._store.read(lambda x: x.execute(stmt).all())
        ]

    def advance(self, schedule_id: str, tick: float, following: float) -> bool:
        """Move the schedule from ``tick`` to ``following``; False if another scheduler did."""
        c = s.schedules.c
        done = self._store.write(
            lambda x: (
                x.execute(
                    update(s.schedules)
                    .where(c.id == schedule_id, c.next_fire_at == tick)
                    .values(next_fire_at=following)
                ).rowcount
            )
        )
        return bool(done)
