"""Schedules in the store: due ones, and the compare-and-set that makes each tick fire once."""

from __future__ import annotations

from sqlalchemy import select, update

from lockgate.records import ScheduleRecord
from lockgate.store import schema as s
from lockgate.store.base import MAX_PAGE
from lockgate.store.crud import RecordTable


class ScheduleStore(RecordTable[ScheduleRecord]):
    """CRUD for schedules and the tick hand-off between schedulers."""

    table = s.schedules
    record_type = ScheduleRecord
    noun = "schedule"
    order = "next_fire_at"

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
