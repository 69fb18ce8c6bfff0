"""Git pollers in the store; a poll is claimed by compare-and-set on its next time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from lockgate.records import PollerRecord
from lockgate.store import schema as s
from lockgate.store.crud import RecordTable
from lockgate.store.ops import WriteTx
from lockgate.store.reads import MAX_PAGE


@dataclass(frozen=True)
class ClaimPoll:
    """Take a due poll by pushing the poller's next poll one interval past ``now``
    (compare-and-set on the time it was due); whether this call won it."""

    poller: PollerRecord
    now: float

    def apply(self, tx: WriteTx) -> bool:
        c, p = s.pollers.c, self.poller
        won = tx.conn.execute(
            update(s.pollers)
            .where(c.id == p.id, c.next_poll_at == p.next_poll_at)
            .values(next_poll_at=self.now + p.interval_seconds)
        ).rowcount
        return bool(won)


@dataclass(frozen=True)
class RecordPoll:
    """What a poll saw (``None``: keep what was seen before) and why it failed, if it did."""

    poller_id: str
    seen: dict[str, str] | None
    error: str | None

    def apply(self, tx: WriteTx) -> None:
        values: dict[str, Any] = {"last_error": self.error}
        if self.seen is not None:
            values["seen"] = self.seen
        tx.conn.execute(update(s.pollers).where(s.pollers.c.id == self.poller_id).values(**values))


class PollerStore(RecordTable[PollerRecord]):
    """CRUD for pollers and the bookkeeping of each poll."""

    table = s.pollers
    record_type = PollerRecord
    noun = "poller"

    def claim_due(self, now: float) -> list[PollerRecord]:
        """Pollers due now, each claimed by pushing its next poll one interval ahead."""
        c = s.pollers.c
        stmt = select(s.pollers).where(c.next_poll_at <= now, c.enabled.is_(True)).limit(MAX_PAGE)
        due = [
            PollerRecord(**r._mapping) for r in self._store.read(lambda x: x.execute(stmt).all())
        ]
        return [p for p in due if self._store.apply(ClaimPoll(p, now))]

    def record(self, poller_id: str, seen: dict[str, str] | None, error: str | None) -> None:
        """Store what a poll saw (or why it failed)."""
        self._store.apply(RecordPoll(poller_id, seen, error))
