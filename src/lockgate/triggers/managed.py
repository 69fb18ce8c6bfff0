"""What every kind of trigger's service shares: create and change from its spec, read one or
all, pause, resume and delete, each audited as the identity it acts as."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from lockgate.access.identity import Acting
from lockgate.store.audit import AuditEntry
from lockgate.store.crud import RecordTable
from lockgate.triggers.spec import Spec

R = TypeVar("R")
S = TypeVar("S", bound=Spec)


class Managed(Acting, ABC, Generic[R, S]):
    """The management half of a trigger service (webhooks, schedules, pollers, queues).

    A paused trigger keeps its settings and history but starts nothing: a webhook answers
    404 as for an unknown trigger, a schedule's ticks and a poller's polls stop, a queue's
    consumers stop reading. A schedule resumed after its next tick passed treats that tick
    by its misfire policy.
    """

    #: The noun of its audit actions (``<kind>.pause``...).
    kind: ClassVar[str]
    #: What ``create`` takes (and, through :meth:`Spec.change`, what ``update`` takes).
    spec: ClassVar[type[Spec]]
    #: Its rows in the store.
    rows: RecordTable[R]

    def create(self, spec: S | Mapping[str, Any] | None = None, /, **fields: Any) -> R:
        """A new one from its spec (or the spec's fields as a mapping or keywords); refused
        with every problem listed, audited in the same transaction."""
        if fields:
            if isinstance(spec, BaseModel):
                raise TypeError("give a spec, or its fields, not both")
            spec = {**(spec or {}), **fields}
        return self._create(self.spec.read(spec if spec is not None else {}))

    def update(
        self, row_id: str, change: BaseModel | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> R:
        """Change the fields given (a field left out, or ``None``, stays as it is); refused
        with every problem listed, audited in the same transaction."""
        given = change if change is not None else fields
        return self._update(row_id, self.spec.changes(given))

    @abstractmethod
    def _create(self, spec: Any) -> R:
        """Write a new one made from ``spec`` (checked by the spec already)."""

    @abstractmethod
    def _update(self, row_id: str, changes: dict[str, Any]) -> R:
        """Write ``changes`` (the fields given, checked by the change already)."""

    def list(self) -> list[R]:
        """Every one (at most a page)."""
        return self.rows.all()

    def get(self, row_id: str) -> R:
        """One by id; :class:`NotFound` if unknown."""
        return self.rows.get(row_id)

    def pause(self, row_id: str) -> R:
        """Stop it firing until resumed."""
        return self._set_enabled(row_id, False)

    def resume(self, row_id: str) -> R:
        """Let a paused one fire again."""
        return self._set_enabled(row_id, True)

    def delete(self, row_id: str) -> None:
        """Remove it and its deliveries."""
        self.forget(row_id)
        self.rows.delete(row_id, self.audit("delete"))

    def forget(self, row_id: str) -> None:
        """Drop what this process keeps of ``row_id`` in memory (a cache), if anything."""

    def _set_enabled(self, row_id: str, enabled: bool) -> R:
        self.forget(row_id)
        return self.rows.set_enabled(row_id, enabled, self.audit("resume" if enabled else "pause"))

    def audit(self, verb: str, details: Any = None) -> AuditEntry | None:
        """The audit entry of ``<kind>.<verb>`` by the identity this service acts as."""
        return self.identity.audit(f"{self.kind}.{verb}", None, details)
