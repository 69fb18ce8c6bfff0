"""What every kind of trigger shares: read one or all, pause, resume and delete, audited."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from lockgate.store.audit import AuditEntry
from lockgate.store.crud import RecordTable

R = TypeVar("R")


class Managed(Generic[R]):
    """The management half of a trigger service (webhooks, schedules, pollers).

    A paused trigger keeps its settings and history but starts nothing: a webhook answers
    404 as for an unknown trigger, a schedule's ticks and a poller's polls stop. A schedule
    resumed after its next tick passed treats that tick by its misfire policy.
    """

    #: The noun of its audit actions (``<kind>.pause``...).
    kind: ClassVar[str]
    rows: RecordTable[R]

    def list(self) -> list[R]:
        """Every one (at most a page)."""
        return self.rows.all()

    def get(self, row_id: str) -> R:
        """One by id; :class:`NotFound` if unknown."""
        return self.rows.get(row_id)

    def pause(self, row_id: str, *, actor: str | None = None) -> R:
        """Stop it firing until resumed (audited with ``actor``)."""
        return self._set_enabled(row_id, False, actor)

    def resume(self, row_id: str, *, actor: str | None = None) -> R:
        """Let a paused one fire again (audited with ``actor``)."""
        return self._set_enabled(row_id, True, actor)

    def delete(self, row_id: str, *, actor: str | None = None) -> None:
        """Remove it and its deliveries (audited with ``actor``)."""
        self.forget(row_id)
        self.rows.delete(row_id, self._audit(actor, "delete"))

    def forget(self, row_id: str) -> None:
        """Drop what this process keeps of ``row_id`` in memory (a cache), if anything."""

    def _set_enabled(self, row_id: str, enabled: bool, actor: str | None) -> R:
        self.forget(row_id)
        return self.rows.set_enabled(
            row_id, enabled, self._audit(actor, "resume" if enabled else "pause")
        )

    def _audit(self, actor: str | None, verb: str) -> AuditEntry | None:
        return AuditEntry(actor, f"{self.kind}.{verb}") if actor else None
