"""The create/get/list/delete every id-keyed table of triggers needs, written once."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Column, Table, delete, select

from lockgate.errors import NotFound
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import MAX_PAGE, Store

R = TypeVar("R")


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

        def insert(conn: Any) -> None:
            conn.execute(self.table.insert().values(row))
            if audit is not None:
                audit.insert(conn, row["created_at"], str(row["id"]))

        self._store.write(insert)
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

        def remove(conn: Any) -> int:
            conn.execute(delete(s.deliveries).where(s.deliveries.c.trigger_id == row_id))
            done = int(conn.execute(delete(self.table).where(self._id == row_id)).rowcount)
            if done and audit is not None:
                audit.insert(conn, time.time(), row_id)
            return done

        done = self._store.write(remove)
        if not done:
            raise NotFound(f"no {self.noun} {row_id!r}")
