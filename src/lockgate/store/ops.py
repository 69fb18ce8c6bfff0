"""Write operations: each one is applied inside a (possibly shared) write transaction.

An op checks its guard first and raises before writing anything when the guard fails, so
that many ops can share one transaction (group commit) and a refused op leaves no trace.
Rows that need no answer (events, log lines, errors) are queued on the transaction and
inserted together at its end.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    column,
    text,
)
from sqlalchemy.sql.selectable import TextualSelect

from lockgate.core.statuses import ACTIVE_RUN_STATUSES, StepStatus
from lockgate.core.text import clean
from lockgate.records import RunRecord, StepRecord
from lockgate.store import schema as s
from lockgate.store.attempts import started_on

InsertFn = Callable[[Table], Any]
#: Rows per multi-row INSERT (well under SQLite's limit on bound variables).
ROWS_PER_INSERT = 200


@dataclass
class WriteTx:
    """One open write transaction shared by a batch of ops."""

    conn: Connection
    now: float
    insert: InsertFn
    skip_locked: bool
    notify: Callable[[], None]
    #: Turns ``:name`` placeholders into the driver's paramstyle.
    driver_sql: Callable[[str], str] = lambda sql: sql
    deferred: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def defer(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` into ``table`` when the batch ends."""
        if rows:
            self.deferred[table].extend(rows)

    def flush(self) -> None:
        """Insert every deferred row, one driver-level statement per table."""
        for table, rows in self.deferred.items():
            columns = list(rows[0])
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - our names
                f"VALUES ({', '.join(':' + c for c in columns)})"
            )
            self.execute_many(sql, rows)
        self.deferred.clear()

    def fetch_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``sql`` once on the driver's cursor; every row it returns."""
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.driver_sql(sql), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def insert_rows(
        self, table: Table, rows: Sequence[dict[str, Any]], conflict: str, returning: str
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (same keys each) with multi-row statements of at most
        ``ROWS_PER_INSERT`` rows, skipping those that hit the unique ``conflict`` columns;
        what ``returning`` names, for the rows inserted."""
        found: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            columns = list(chunk[0])
            params = {f"{c}_{n}": row[c] for n, row in enumerate(chunk) for c in columns}
            values = ", ".join(
                "(" + ", ".join(f":{c}_{n}" for c in columns) + ")" for n in range(len(chunk))
            )
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values} "  # noqa: S608
                f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
            )
            found.extend(self.fetch_rows(sql, params))
        return found

    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> int:
        """Run ``sql`` once per row on the driver's cursor; the total rows affected.

        The hot path skips SQLAlchemy's statement machinery: at thousands of checkpoints
        a second its per-statement cost was a third of the commit time.
        """
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(rows) == 1:  # one row: skip the driver's batching set-up (a round trip)
                cursor.execute(self.driver_sql(sql), rows[0])
            else:
                cursor.executemany(self.driver_sql(sql), rows)
            return int(cursor.rowcount)
        finally:
            cursor.close()


T_co = TypeVar("T_co", covariant=True)


class Op(Protocol[T_co]):
    """A write that can share a transaction with others; applying it gives a ``T_co``.

    Every write of the store is an op: the one way in, whether it is applied alone, in a
    worker's group commit, or wrapped with its audit entry (:class:`~lockgate.store.audit.Audited`).
    """

    def apply(self, tx: WriteTx) -> T_co:
        """Perform the write; raise before writing if a guard fails."""


def run_record(row: Any) -> RunRecord:
    """A ``runs`` row as a record."""
    m = row._mapping
    return RunRecord(**{c.name: m[c.name] for c in s.runs.columns})


def step_record(row: Any) -> StepRecord:
    """A ``steps`` row as a record."""
    m = row._mapping
    return StepRecord(**{c.name: m[c.name] for c in s.steps.columns})


ACTIVE_SQL = ", ".join(f"'{st.value}'" for st in sorted(ACTIVE_RUN_STATUSES))
RUN_COLUMNS = ", ".join(c.name for c in s.runs.columns)
STEP_COLUMNS = ", ".join(c.name for c in s.steps.columns)


def typed(sql: str, table: Table) -> TextualSelect:
    """A text statement whose result columns carry the table's types (JSON decoding)."""
    return text(sql).columns(*[column(c.name, c.type) for c in table.columns])


RUN_BY_KEY = typed(
    f"SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = :key",  # noqa: S608
    s.runs,
)
RUN_BY_ID = typed(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = :id", s.runs)  # noqa: S608


def started_event(run_id: str, step: str, attempt: int, worker: str, at: float) -> dict[str, Any]:
    """The RUNNING event that records an attempt's start, before it runs: recovery then
    knows the attempt started, and counts the next execution as a new attempt."""
    return event_row(run_id, step, StepStatus.RUNNING, attempt, started_on(worker), at)


def event_row(
    run_id: str, step: str | None, status: str, attempt: int | None, message: str | None, at: float
) -> dict[str, Any]:
    """An ``events`` row."""
    return {
        "run_id": run_id,
        "step": step,
        "status": str(status),
        "attempt": attempt,
        "message": message,
        "at": at,
    }


JSON_COLUMNS = {
    table.name: {c.name for c in table.columns if isinstance(c.type, JSON)}
    for table in (s.runs, s.steps)
}


def json_text(value: Any) -> str | None:
    """A JSON column's value as the drivers take it (``None`` stays SQL NULL); text that
    no database stores (a step's output holding a lone surrogate or a NUL) is stored with
    U+FFFD in its place."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"))
    if "\\u" in text:  # escaped characters: maybe one of those
        text = json.dumps(clean(value), separators=(",", ":"))
    return text


def db_values(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    json_cols = JSON_COLUMNS[table.name]
    return {k: (json_text(v) if k in json_cols else v) for k, v in values.items()}


def update_sql(table: Table, columns: tuple[str, ...], where: str) -> str:
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    return f"UPDATE {table.name} SET {sets} WHERE {where}"  # noqa: S608 - names are ours
