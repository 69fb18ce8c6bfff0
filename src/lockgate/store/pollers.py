"""Git pollers in the store; a poll is claimed by compare-and-set on its next time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from lockgate.records import PollerRecord
from lockgate.store import schema as s
from lockgate.store.base import MAX_PAGE
from lockgate.store.crud import RecordTable


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
        claimed = []
        for poller in due:
            won = self._store.write(
                lambda x, p=poller: (
                    x.execute(  # type: ignore[misc]
                        update(s.pollers)
                        .where(c.id == p.id, c.next_poll_at == p.next_poll_at)
                        .values(next_poll_at=now + p.interval_seconds)
                    ).rowcount
                )
            )
            if won:
                claimed.append(poller)
        return claimed

    def record(self, poller_id: str, seen: dict[str, str] | None, error: str | None) -> None:
        """Store what a poll saw (or why it failed)."""
        values: dict[str, Any] = {"last_error": error}
        if seen is not None:
            values["seen"] = seen
        self._store.write(
            lambda x: x.execute(
                update(s.pollers).where(s.pollers.c.id == poller_id).values(**values)
            )
        )
