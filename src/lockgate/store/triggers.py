"""Triggers and their deliveries in the store."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, select, update

from lockgate.errors import NotFound
from lockgate.records import DeliveryRecord, TriggerRecord
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import MAX_PAGE
from lockgate.store.crud import RecordTable


class TriggerStore(RecordTable[TriggerRecord]):
    """CRUD for triggers; deliveries stored once per (trigger, key)."""

    table = s.triggers
    record_type = TriggerRecord
    noun = "trigger"

    def finish(
        self,
        delivery_id: int,
        status: str,
        run_ids: list[str],
        error: str | None,
        audit: AuditEntry | None = None,
    ) -> None:
        """Record how a delivery ended (and, for a redelivery, who asked)."""
        d = s.deliveries.c

        def write(conn: Any) -> None:
            conn.execute(
                update(s.deliveries)
                .where(d.id == delivery_id)
                .values(
                    status=status,
                    run_ids=run_ids,
                    error=error,
                    attempts=d.attempts + 1,
                    updated_at=time.time(),
                )
            )
            if audit is not None:
                audit.insert(conn, time.time(), str(delivery_id))

        self._store.write(write)

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One delivery."""
        stmt = select(s.deliveries).where(s.deliveries.c.id == delivery_id)
        row = self._store.read(lambda c: c.execute(stmt).first())
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        return DeliveryRecord(**row._mapping)

    def deliveries(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """A trigger's deliveries, newest first (page with ``before``: the last id seen)."""
        d = s.deliveries.c
        stmt = (
            select(s.deliveries)
            .where(d.trigger_id == trigger_id)
            .order_by(d.id.desc())
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        if before is not None:
            stmt = stmt.where(d.id < before)
        return [
            DeliveryRecord(**r._mapping) for r in self._store.read(lambda c: c.execute(stmt).all())
        ]

    def counts(self) -> list[tuple[str, str, int]]:
        """``(source, status, how many)`` of the stored deliveries (for /metrics)."""
        d = s.deliveries.c
        stmt = select(d.source, d.status, func.count()).group_by(d.source, d.status)
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def retryable(self, now: float, stale_after: float, max_attempts: int) -> list[DeliveryRecord]:
        """Webhook deliveries a crash left RECEIVED or PROCESSING, and FAILED ones with
        attempts left (waiting longer after each attempt). Ticks and polls are stored with
        their run in one transaction, so they are never left half done."""
        d = s.deliveries.c
        stmt = (
            select(s.deliveries)
            .where(d.source == "webhook")
            .where(
                (d.status.in_(["RECEIVED", "PROCESSING"]) & (d.updated_at < now - stale_after))
                | (
                    (d.status == "FAILED")
                    & (d.attempts < max_attempts)
                    & (d.updated_at < now - stale_after * d.attempts)
                )
            )
            .order_by(d.id)
            .limit(MAX_PAGE)
        )
        return [
            DeliveryRecord(**r._mapping) for r in self._store.read(lambda c: c.execute(stmt).all())
        ]

    def claim(self, delivery: DeliveryRecord) -> bool:
        """Take a delivery for processing (compare-and-set on its status and time)."""
        d = s.deliveries.c
        done = self._store.write(
            lambda c: (
                c.execute(
                    update(s.deliveries)
                    .where(
                        d.id == delivery.id,
                        d.status == delivery.status,
                        d.updated_at == delivery.updated_at,
                    )
                    .values(status="PROCESSING", updated_at=time.time())
                ).rowcount
            )
        )
        return bool(done)

    def prune(self, older_than: float, keep: int) -> int:
        """Retention: drop deliveries older than ``older_than`` and all but ``keep`` per trigger."""
        d = s.deliveries.c

        def run(conn: Any) -> int:
            removed = conn.execute(delete(s.deliveries).where(d.received_at < older_than)).rowcount
            for (trigger_id,) in conn.execute(select(d.trigger_id).distinct()).all():
                cutoff = conn.execute(
                    select(d.id)
                    .where(d.trigger_id == trigger_id)
                    .order_by(d.id.desc())
                    .offset(keep)
                    .limit(1)
                ).scalar()
                if cutoff is not None:
                    removed += conn.execute(
                        delete(s.deliveries).where(d.trigger_id == trigger_id, d.id <= cutoff)
                    ).rowcount
            return int(removed)

        return int(self._store.write(run))
