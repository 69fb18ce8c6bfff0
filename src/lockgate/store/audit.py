"""Audit entries, written in the same transaction as the action they record."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from lockgate.store import schema as s
from lockgate.store.ops import Op, WriteTx


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to what: ``actor`` is the subject (a token's, or the OS user's)."""

    actor: str
    action: str
    target: str | None = None
    details: Any = None

    def row(self, at: float, target: str | None = None) -> dict[str, Any]:
        """The ``audit`` row (``target`` overrides the entry's, once the action knows it)."""
        return {
            "at": at,
            "actor": self.actor,
            "action": self.action,
            "target": target if target is not None else self.target,
            "details": None if self.details is None else json.dumps(self.details, default=str),
        }

    def insert(self, conn: Connection, at: float, target: str | None = None) -> None:
        """Insert the row on ``conn`` (inside the action's own transaction)."""
        row = self.row(at, target)
        row["details"] = None if self.details is None else self.details
        conn.execute(s.audit.insert().values(row))


T = TypeVar("T")


@dataclass
class Audited(Generic[T]):
    """An op and its audit entry, applied together (or not at all)."""

    op: Op[T]
    entry: AuditEntry
    #: The target from the op's result (a run id created by the op, say).
    target: Callable[[T], str | None] | None = None

    def apply(self, tx: WriteTx) -> T:
        """The op's result; the entry is queued in the same transaction."""
        result = self.op.apply(tx)
        target = self.target(result) if self.target is not None else None
        tx.defer(s.audit, [self.entry.row(tx.now, target)])
        return result


@dataclass(frozen=True)
class AppendAudit:
    """One audit entry on its own (an action that writes nothing else: a refused request)."""

    entry: AuditEntry

    def apply(self, tx: WriteTx) -> None:
        self.entry.insert(tx.conn, tx.now)
