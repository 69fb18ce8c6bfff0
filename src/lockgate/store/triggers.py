"""Triggers and their deliveries in the store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from lockgate.core.statuses import RETRYABLE_DELIVERIES, DeliveryStatus
from lockgate.errors import NotFound
from lockgate.records import DeliveryRecord, TriggerRecord
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.crud import RecordTable
from lockgate.store.ops import WriteTx
from lockgate.store.reads import MAX_PAGE


@dataclass(frozen=True)
class FinishDelivery:
    """Record how a delivery's processing ended (and, for a redelivery, who asked)."""

    delivery_id: int
    status: str
    run_ids: list[str]
    error: str | None
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> None:
        d = s.deliveries.c
        tx.conn.execute(
            update(s.deliveries)
            .where(d.id == self.delivery_id)
            .values(
                status=self.status,
                run_ids=self.run_ids,
                error=self.error,
                attempts=d.attempts + 1,
                updated_at=tx.now,
            )
        )
        if self.audit is not None:
            self.audit.insert(tx.conn, tx.now, str(self.delivery_id))


@dataclass(frozen=True)
class ClaimDelivery:
    """Take a delivery for processing: compare-and-set on its status and time; whether
    this call won it."""

    delivery: DeliveryRecord

    def apply(self, tx: WriteTx) -> bool:
        d = s.deliveries.c
        won = tx.conn.execute(
            update(s.deliveries)
            .where(
                d.id == self.delivery.id,
                d.status == self.delivery.status,
                d.updated_at == self.delivery.updated_at,
            )
            .values(status=DeliveryStatus.PROCESSING.value, updated_at=tx.now)
        ).rowcount
        return bool(won)


@dataclass(frozen=True)
class PruneDeliveries:
    """Retention: drop deliveries older than ``older_than`` and all but the newest ``keep``
    of each trigger; how many went."""

    older_than: float
    keep: int

    def apply(self, tx: WriteTx) -> int:
        d, conn = s.deliveries.c, tx.conn
        removed = conn.execute(delete(s.deliveries).where(d.received_at < self.older_than)).rowcount
        for (trigger_id,) in conn.execute(select(d.trigger_id).distinct()).all():
            cutoff = conn.execute(
                select(d.id)
                .where(d.trigger_id == trigger_id)
                .order_by(d.id.desc())
                .offset(self.keep)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                removed += conn.execute(
                    delete(s.deliveries).where(d.trigger_id == trigger_id, d.id <= cutoff)
                ).rowcount
        return int(removed)


@dataclass
class PruneReplays:
    """The replay guard's own retention: forget identities first seen before
    ``older_than``; how many went."""

    older_than: float

    def apply(self, tx: WriteTx) -> int:
        r = s.webhook_replays.c
        gone = tx.conn.execute(delete(s.webhook_replays).where(r.seen_at < self.older_than))
        return int(gone.rowcount)


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
        self._store.apply(FinishDelivery(delivery_id, status, run_ids, error, audit))

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
                (d.status.in_([s.value for s in RETRYABLE_DELIVERIES]))
                & (d.updated_at < now - stale_after)
                | (
                    (d.status == DeliveryStatus.FAILED.value)
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
        return self._store.apply(ClaimDelivery(delivery))

    def prune(self, older_than: float, keep: int) -> int:
        """Retention: drop deliveries older than ``older_than`` and all but ``keep`` per trigger."""
        return self._store.apply(PruneDeliveries(older_than, keep))

    def forget_replays(self, older_than: float) -> int:
        """The replay guard's retention: forget identities first seen before ``older_than``."""
        return self._store.apply(PruneReplays(older_than))
