"""Queue triggers in the store: their rows, and the last error each consumer met."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from lockgate.records import QueueRecord
from lockgate.store import schema as s
from lockgate.store.crud import RecordTable
from lockgate.store.ops import WriteTx
from lockgate.store.reads import MAX_PAGE


@dataclass(frozen=True)
class RecordQueueError:
    """What a queue's consumer last failed on (``None``: it is reading again)."""

    queue_id: str
    error: str | None

    def apply(self, tx: WriteTx) -> None:
        c = s.queues.c
        tx.conn.execute(
            update(s.queues)
            .where(c.id == self.queue_id, c.last_error.is_distinct_from(self.error))
            .values(last_error=self.error)
        )


class QueueStore(RecordTable[QueueRecord]):
    """CRUD for queue triggers."""

    table = s.queues
    record_type = QueueRecord
    noun = "queue"

    def enabled(self) -> list[QueueRecord]:
        """The queues to consume now."""
        c = s.queues.c
        stmt = select(s.queues).where(c.enabled.is_(True)).order_by(c.created_at).limit(MAX_PAGE)
        return [
            QueueRecord(**r._mapping) for r in self._store.read(lambda x: x.execute(stmt).all())
        ]

    def record_error(self, queue_id: str, error: str | None) -> None:
        """Keep what the consumer last failed on (or clear it)."""
        self._store.apply(RecordQueueError(queue_id, error))
