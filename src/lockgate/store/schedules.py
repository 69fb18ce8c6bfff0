"""Schedules in the store: due ones, and the compare-and-set that makes each tick fire once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from lockgate.records import ScheduleRecord
from lockgate.store import schema as s
from lockgate.store.crud import RecordTable
from lockgate.store.ops import WriteTx
from lockgate.store.reads import MAX_PAGE


@dataclass(frozen=True)
class AdvanceSchedule:
    """Move a schedule from ``tick`` to ``following`` by compare-and-set; False if another
    scheduler did first."""

    schedule_id: str
    tick: float
    following: float

    def apply(self, tx: WriteTx) -> bool:
        c = s.schedules.c
        moved = tx.conn.execute(
            update(s.schedules)
            .where(c.id == self.schedule_id, c.next_fire_at == self.tick)
            .values(next_fire_at=self.following)
        ).rowcount
        return bool(moved)


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
        return self._store.apply(AdvanceSchedule(schedule_id, tick, following))
