"""The create/get/list/delete every id-keyed table of triggers needs, written once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Column, Table, delete, select, update

from lockgate.errors import NotFound
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import Store
from lockgate.store.ops import WriteTx
from lockgate.store.reads import MAX_PAGE

R = TypeVar("R")


@dataclass(frozen=True)
class InsertRow:
    """Insert one row, with its audit entry (target: the row's id)."""

    table: Table
    row: dict[str, Any]
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> None:
        tx.conn.execute(self.table.insert().values(self.row))
        if self.audit is not None:
            self.audit.insert(tx.conn, tx.now, str(self.row["id"]))


@dataclass(frozen=True)
class DeleteRow:
    """Remove the row ``row_id`` of a trigger table with its deliveries; the rows removed
    (0: there was none, and nothing is audited)."""

    table: Table
    row_id: str
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> int:
        tx.conn.execute(delete(s.deliveries).where(s.deliveries.c.trigger_id == self.row_id))
        done = int(
            tx.conn.execute(delete(self.table).where(self.table.c.id == self.row_id)).rowcount
        )
        if done and self.audit is not None:
            self.audit.insert(tx.conn, tx.now, self.row_id)
        return done


@dataclass(frozen=True)
class SetEnabled:
    """Pause (``enabled=False``) or resume the row ``row_id``; the rows changed (0: there
    was none, and nothing is audited)."""

    table: Table
    row_id: str
    enabled: bool
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> int:
        changed = tx.conn.execute(
            update(self.table).where(self.table.c.id == self.row_id).values(enabled=self.enabled)
        )
        if changed.rowcount and self.audit is not None:
            self.audit.insert(tx.conn, tx.now, self.row_id)
        return int(changed.rowcount)


@dataclass(frozen=True)
class UpdateRow:
    """Set ``values`` on the row ``row_id``; the rows changed (0: there was none, and
    nothing is audited)."""

    table: Table
    row_id: str
    values: dict[str, Any]
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> int:
        changed = tx.conn.execute(
            update(self.table).where(self.table.c.id == self.row_id).values(**self.values)
        )
        if changed.rowcount and self.audit is not None:
            self.audit.insert(tx.conn, tx.now, self.row_id)
        return int(changed.rowcount)


class RecordTable(Generic[R]):
    """Rows of ``table`` (primary key ``id``) as records of ``record_type``."""

    table: ClassVar[Table]
    record_type: ClassVar[type[Any]]
    #: What one row is called in errors ("trigger", "schedule", ...).
    noun: ClassVar[str]
    #: The column ``all()`` orders by.
    order: ClassVar[str] = "created_at"

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _id(self) -> Column[Any]:
        return self.table.c.id

    def create(self, row: dict[str, Any], audit: AuditEntry | None = None) -> R:
        """Insert a row (``created_at`` is set here), with its audit entry if any."""
        row = {**row, "created_at": time.time()}
        self._store.apply(InsertRow(self.table, row, audit))
        return self.record_type(**row)  # type: ignore[no-any-return]

    def find(self, row_id: str) -> R | None:
        """The row, or ``None``."""
        stmt = select(self.table).where(self._id == row_id)
        row = self._store.read(lambda c: c.execute(stmt).first())
        return self.record_type(**row._mapping) if row is not None else None

    def get(self, row_id: str) -> R:
        """The row; :class:`NotFound` if there is none."""
        found = self.find(row_id)
        if found is None:
            raise NotFound(f"no {self.noun} {row_id!r}")
        return found

    def all(self) -> list[R]:
        """Every row (at most a page), ordered by ``order``."""
        stmt = select(self.table).order_by(self.table.c[self.order]).limit(MAX_PAGE)
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [self.record_type(**r._mapping) for r in rows]

    def delete(self, row_id: str, audit: AuditEntry | None = None) -> None:
        """Remove a row and its deliveries, with its audit entry if any; :class:`NotFound`
        if there is none."""
        if not self._store.apply(DeleteRow(self.table, row_id, audit)):
            raise NotFound(f"no {self.noun} {row_id!r}")

    def update(self, row_id: str, values: dict[str, Any], audit: AuditEntry | None = None) -> R:
        """Change a row's ``values``, with its audit entry if any; the row as it is now.
        :class:`NotFound` if there is none."""
        if not self._store.apply(UpdateRow(self.table, row_id, values, audit)):
            raise NotFound(f"no {self.noun} {row_id!r}")
        return self.get(row_id)

    def set_enabled(self, row_id: str, enabled: bool, audit: AuditEntry | None = None) -> R:
        """Pause or resume a row, with its audit entry if any; the row as it is now.
        :class:`NotFound` if there is none."""
        if not self._store.apply(SetEnabled(self.table, row_id, enabled, audit)):
            raise NotFound(f"no {self.noun} {row_id!r}")
        return self.get(row_id)
