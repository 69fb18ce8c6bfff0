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
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    and_,
    bindparam,
    column,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.selectable import TextualSelect

from lockgate.core.statuses import ACTIVE_RUN_STATUSES, RunStatus, StepStatus
from lockgate.errors import (
    InvalidState,
    LockgateError,
    NotFound,
    RunNotFound,
    StaleLease,
)
from lockgate.store import schema as s
from lockgate.store.attempts import started_on
from lockgate.store.records import Claimed, RunRecord, StepRecord

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

    def fetch_value(self, sql: str, params: dict[str, Any]) -> Any:
        """Run ``sql`` once on the driver's cursor; the first column of its first row (or
        ``None``). For the hot writes, like :meth:`execute_many`."""
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.driver_sql(sql), params)
            row = cursor.fetchone()
            return None if row is None else row[0]
        finally:
            cursor.close()

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


class Op(Protocol):
    """A write that can share a transaction with others."""

    def apply(self, tx: WriteTx) -> Any:
        """Perform the write; raise before writing if a guard fails."""


def run_record(row: Any) -> RunRecord:
    """A ``runs`` row as a record."""
    m = row._mapping
    return RunRecord(**{c.name: m[c.name] for c in s.runs.columns})


def step_record(row: Any) -> StepRecord:
    """A ``steps`` row as a record."""
    m = row._mapping
    return StepRecord(**{c.name: m[c.name] for c in s.steps.columns})


_ACTIVE = ", ".join(f"'{st.value}'" for st in sorted(ACTIVE_RUN_STATUSES))
_RUN_COLUMNS = ", ".join(c.name for c in s.runs.columns)
_STEP_COLUMNS = ", ".join(c.name for c in s.steps.columns)


def _typed(sql: str, table: Table) -> TextualSelect:
    """A text statement whose result columns carry the table's types (JSON decoding)."""
    return text(sql).columns(*[column(c.name, c.type) for c in table.columns])


_RUN_BY_KEY = _typed(
    f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = :key",  # noqa: S608
    s.runs,
)
RUN_BY_ID = _typed(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = :id", s.runs)  # noqa: S608


@dataclass
class CreateRun:
    """Insert a run with its NOT_STARTED steps; once per idempotency key.

    With ``claim_for``, the run is created already leased to that (local) worker: a run
    started in a process that has a worker with room costs one transaction less.
    """

    run_id: str
    namespace: str
    pipeline: str
    version: str
    step_names: Sequence[str]
    params: Any
    noop: bool
    requested_by: str | None
    idempotency_key: str | None
    claim_for: str | None = None
    lease_seconds: float = 30.0

    def apply(self, tx: WriteTx) -> tuple[RunRecord, bool]:
        """Returns ``(run, created)``; an existing key returns the original run."""
        return create_runs(tx, [self])[0]

    def record(self, now: float) -> RunRecord:
        """The run as this op inserts it."""
        return RunRecord(
            id=self.run_id,
            namespace=self.namespace,
            pipeline=self.pipeline,
            version=self.version,
            status=RunStatus.PENDING.value,
            params=self.params,
            context={},
            noop=self.noop,
            requested_by=self.requested_by,
            idempotency_key=self.idempotency_key,
            current_step=None,
            error=None,
            cancel_requested=False,
            flag=None,
            lease_owner=self.claim_for,
            lease_token=0 if self.claim_for is None else 1,
            lease_expires_at=None if self.claim_for is None else now + self.lease_seconds,
            wake_at=now,
            created_at=now,
            updated_at=now,
            finished_at=None,
        )


def create_runs(tx: WriteTx, creates: Sequence[CreateRun]) -> list[tuple[RunRecord, bool]]:
    """Insert runs (multi-row statements, straight on the driver: run creation is on the hot
    path of every trigger) with their NOT_STARTED steps; ``(run, created)`` each, an
    idempotency key used before giving the original run."""
    records = [c.record(tx.now) for c in creates]
    rows = [
        {
            "id": r.id,
            "namespace": r.namespace,
            "pipeline": r.pipeline,
            "version": r.version,
            "status": r.status,
            "params": _json(r.params),
            "context": "{}",
            "noop": r.noop,
            "requested_by": r.requested_by,
            "idempotency_key": r.idempotency_key,
            "cancel_requested": False,
            "lease_owner": r.lease_owner,
            "lease_token": r.lease_token,
            "lease_expires_at": r.lease_expires_at,
            "wake_at": tx.now,
            "created_at": tx.now,
            "updated_at": tx.now,
        }
        for r in records
    ]
    inserted = {row[0] for row in tx.insert_rows(s.runs, rows, "idempotency_key", "id")}
    results: list[tuple[RunRecord, bool]] = []
    for create, record in zip(creates, records, strict=True):
        if record.id not in inserted:  # its key was used before (maybe by another process)
            row = tx.conn.execute(_RUN_BY_KEY, {"key": create.idempotency_key}).one()
            results.append((run_record(row), False))
            continue
        # The steps go in with the rest of the batch's rows, in one statement at its end:
        # nothing in the same transaction reads the steps of a run it has just created.
        tx.defer(
            s.steps,
            [
                {
                    "run_id": record.id,
                    "name": name,
                    "position": i,
                    "status": StepStatus.NOT_STARTED.value,
                    "attempt": 0,
                }
                for i, name in enumerate(create.step_names)
            ],
        )
        tx.defer(s.events, [event_row(record.id, None, RunStatus.PENDING, None, None, tx.now)])
        if create.claim_for is None:
            tx.notify()
        elif create.step_names:  # its first step starts in this process: record the start
            start = started_event(record.id, create.step_names[0], 1, create.claim_for, tx.now)
            running = event_row(record.id, None, RunStatus.RUNNING, None, None, tx.now)
            tx.defer(s.events, [running, start])
        results.append((record, True))
    return results


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


def _claim_sql(skip_locked: bool) -> TextualSelect:
    # Hand-written: the claim runs on every poll, and building it with the expression
    # language cost about a millisecond of CPU per call.
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    sql = f"""
        UPDATE runs
           SET lease_owner = :owner, lease_token = lease_token + 1,
               lease_expires_at = :expires, flag = NULL
         WHERE id IN (
            SELECT id FROM runs
             WHERE wake_at <= :now
               AND status IN ({_ACTIVE})
               AND (lease_expires_at IS NULL OR lease_expires_at < :now)
               AND version IN :versions
             ORDER BY wake_at
             LIMIT :limit{lock})
        RETURNING {_RUN_COLUMNS}"""  # noqa: S608 - no user input in the text
    stmt = _typed(sql, s.runs)
    return stmt.bindparams(bindparam("versions", expanding=True))


_CLAIM = {flag: _claim_sql(flag) for flag in (False, True)}
_CLAIMED_STEPS = _typed(
    f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id IN :ids ORDER BY run_id, position",  # noqa: S608
    s.steps,
).bindparams(bindparam("ids", expanding=True))


@dataclass
class Claim:
    """Lease up to ``limit`` due runs of the given versions to ``worker_id``."""

    worker_id: str
    versions: Sequence[str]
    limit: int
    lease_seconds: float

    def apply(self, tx: WriteTx) -> list[Claimed]:
        """The runs now held, each with a new fencing token and its steps."""
        if self.limit <= 0 or not self.versions:
            return []
        rows = tx.conn.execute(
            _CLAIM[tx.skip_locked],
            {
                "owner": self.worker_id,
                "expires": tx.now + self.lease_seconds,
                "now": tx.now,
                "versions": list(self.versions),
                "limit": self.limit,
            },
        ).all()
        if not rows:
            return []
        claimed = [run_record(row) for row in rows]
        by_run: dict[str, list[StepRecord]] = defaultdict(list)
        for row in tx.conn.execute(_CLAIMED_STEPS, {"ids": [c.id for c in claimed]}):
            rec = step_record(row)
            by_run[rec.run_id].append(rec)
        starts = self._starts(tx, claimed, by_run)
        return [Claimed(c, tuple(by_run[c.id]), starts.get(c.id)) for c in claimed]

    def _starts(
        self, tx: WriteTx, claimed: Sequence[RunRecord], by_run: dict[str, list[StepRecord]]
    ) -> dict[str, tuple[str, int]]:
        """Record the start of each claimed run's next step (and of a PENDING run), numbered
        past every attempt started before: some may have been lost with their worker."""
        nexts: dict[str, StepRecord] = {}
        pending = {run.id: run.status == RunStatus.PENDING.value for run in claimed}
        for run in claimed:
            if run.status == RunStatus.ROLLING_BACK.value or run.cancel_requested:
                continue
            rec = next((st for st in by_run[run.id] if st.status not in _DONE), None)
            if rec is not None and rec.status in _STARTABLE:
                nexts[run.id] = rec
        if not nexts:
            return {}
        seen = tx.conn.execute(
            _LAST_STARTED, {"ids": list(nexts), "running": StepStatus.RUNNING.value}
        ).all()
        last = {(row[0], row[1]): int(row[2] or 0) for row in seen}
        starts: dict[str, tuple[str, int]] = {}
        for run_id, rec in nexts.items():
            attempt = max(rec.attempt, last.get((run_id, rec.name), 0)) + 1
            if pending[run_id]:  # the run starts with it
                tx.defer(s.events, [event_row(run_id, None, RunStatus.RUNNING, None, None, tx.now)])
            tx.defer(s.events, [started_event(run_id, rec.name, attempt, self.worker_id, tx.now)])
            starts[run_id] = (rec.name, attempt)
        return starts


#: Step statuses a run has finished with, going forward.
_DONE = {StepStatus.COMPLETED.value, StepStatus.SKIPPED.value}
#: Statuses of a next step that starts a new attempt when claimed (a WAITING step goes on
#: as the same attempt; a RUNNING one was lost in flight, and the engine decides).
_STARTABLE = {StepStatus.NOT_STARTED.value, StepStatus.RETRYING.value}
_LAST_STARTED = text(
    "SELECT run_id, step, MAX(attempt) FROM events "
    "WHERE run_id IN :ids AND status = :running GROUP BY run_id, step"
).bindparams(bindparam("ids", expanding=True))


@dataclass
class Checkpoint:
    """A fenced state change of one run: run columns, one step's columns, events, logs."""

    run_id: str
    token: int
    run: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    step_values: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str | None, str, int | None, str | None]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    #: An approval step's rendered request, stored once as the step parks for decisions.
    approval: dict[str, Any] | None = None

    def apply(self, tx: WriteTx) -> None:
        """Write it all, or raise :class:`StaleLease` having written nothing."""
        result = apply_checkpoints(tx, [self])[0]
        if isinstance(result, BaseException):
            raise result

    def after_fence(self, tx: WriteTx) -> None:
        """Queue the rows that follow a successful fenced update."""
        tx.defer(
            s.events,
            [event_row(self.run_id, st, status, a, m, tx.now) for st, status, a, m in self.events],
        )
        tx.defer(s.run_errors, [{"run_id": self.run_id, "at": tx.now, **e} for e in self.errors])
        tx.defer(s.step_logs, self.logs)
        if self.approval is not None and self.step is not None:
            tx.conn.execute(
                tx.insert(s.approvals)
                .values(run_id=self.run_id, step=self.step, opened_at=tx.now, **self.approval)
                .on_conflict_do_nothing(index_elements=["run_id", "step"])
            )


_JSON_COLUMNS = {
    table.name: {c.name for c in table.columns if isinstance(c.type, JSON)}
    for table in (s.runs, s.steps)
}


def _json(value: Any) -> str | None:
    """A JSON column's value as the drivers take it (``None`` stays SQL NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _db_values(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    json_cols = _JSON_COLUMNS[table.name]
    return {k: (_json(v) if k in json_cols else v) for k, v in values.items()}


def _update_sql(table: Table, columns: tuple[str, ...], where: str) -> str:
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    return f"UPDATE {table.name} SET {sets} WHERE {where}"  # noqa: S608 - names are ours


def apply_checkpoints(tx: WriteTx, cps: Sequence[Checkpoint]) -> list[Any]:
    """Apply many checkpoints with one statement per shape of change (group commit's core).

    Per run, checkpoints keep their order: the n-th checkpoint of every run goes in wave n.
    A checkpoint whose lease token is stale gets :class:`StaleLease` and writes nothing.
    """
    results: list[Any] = [None] * len(cps)
    waves: list[list[int]] = []
    depth: dict[str, int] = {}
    for i, cp in enumerate(cps):
        w = depth[cp.run_id] = depth.get(cp.run_id, -1) + 1
        if w == len(waves):
            waves.append([])
        waves[w].append(i)
    for wave in waves:
        stale = _fence(tx, [cps[i] for i in wave])
        valid = []
        for i in wave:
            cp = cps[i]
            if cp.run_id in stale:
                results[i] = StaleLease(
                    f"run {cp.run_id}: lease token {cp.token} is no longer current"
                )
            else:
                valid.append(cp)
        _update_steps(tx, valid)
        for cp in valid:
            cp.after_fence(tx)
    return results


def _fence(tx: WriteTx, cps: Sequence[Checkpoint]) -> set[str]:
    """Update each checkpoint's run row if its token is current; the stale run ids."""
    shapes: dict[tuple[str, ...], list[Checkpoint]] = defaultdict(list)
    for cp in cps:
        shapes[tuple(sorted(cp.run))].append(cp)
    stale: set[str] = set()
    for columns, group in shapes.items():
        sql = _update_sql(s.runs, (*columns, "updated_at"), "id = :_id AND lease_token = :_token")
        params = [
            {
                **_db_values(s.runs, cp.run),
                "updated_at": tx.now,
                "_id": cp.run_id,
                "_token": cp.token,
            }
            for cp in group
        ]
        if tx.execute_many(sql, params) != len(group):
            current = dict(
                tx.conn.execute(
                    select(s.runs.c.id, s.runs.c.lease_token).where(
                        s.runs.c.id.in_([cp.run_id for cp in group])
                    )
                ).all()
            )
            stale |= {cp.run_id for cp in group if current.get(cp.run_id) != cp.token}
    return stale


def _update_steps(tx: WriteTx, cps: Sequence[Checkpoint]) -> None:
    shapes: dict[tuple[str, ...], list[Checkpoint]] = defaultdict(list)
    for cp in cps:
        if cp.step is not None and cp.step_values:
            shapes[tuple(sorted(cp.step_values))].append(cp)
    for columns, group in shapes.items():
        sql = _update_sql(s.steps, columns, "run_id = :_run AND name = :_step")
        params = [
            {**_db_values(s.steps, cp.step_values), "_run": cp.run_id, "_step": cp.step}
            for cp in group
        ]
        tx.execute_many(sql, params)


@dataclass
class AppendLogs:
    """Log lines that need no fencing (flushed while a step still runs)."""

    rows: list[dict[str, Any]]

    def apply(self, tx: WriteTx) -> None:
        """Queue the lines for the batch insert."""
        tx.defer(s.step_logs, self.rows)


@dataclass
class Heartbeat:
    """Extend the leases this worker still holds and report which ones those are."""

    worker_id: str
    run_ids: Sequence[str]
    lease_seconds: float

    def apply(self, tx: WriteTx) -> set[str]:
        """Ids of the runs still held."""
        tx.conn.execute(
            update(s.workers).where(s.workers.c.id == self.worker_id).values(heartbeat_at=tx.now)
        )
        if not self.run_ids:
            return set()
        r = s.runs.c
        rows = tx.conn.execute(
            update(s.runs)
            .where(r.id.in_(list(self.run_ids)), r.lease_owner == self.worker_id)
            .values(lease_expires_at=tx.now + self.lease_seconds)
            .returning(r.id)
        )
        return {str(x) for x in rows.scalars()}


@dataclass
class Release:
    """Give a held run back (worker shutdown) so any worker can resume it at once."""

    run_id: str
    token: int

    def apply(self, tx: WriteTx) -> None:
        """Clear the lease if it is still ours."""
        r = s.runs.c
        tx.conn.execute(
            update(s.runs)
            .where(r.id == self.run_id, r.lease_token == self.token)
            .values(lease_owner=None, lease_expires_at=None, updated_at=tx.now)
        )
        tx.notify()


@dataclass
class RequestCancel:
    """Ask for a run to stop and roll back; a run nobody holds is woken to do so."""

    run_id: str
    by: str | None = None

    def apply(self, tx: WriteTx) -> str:
        """The run's status after the request."""
        r = s.runs.c
        status = tx.conn.execute(select(r.status).where(r.id == self.run_id)).scalar()
        if status is None:
            raise RunNotFound(f"no run {self.run_id!r}")
        if RunStatus(status).terminal:
            raise InvalidState(
                f"run {self.run_id} is {status}; only an active run can be cancelled",
                details={"status": status},
            )
        tx.conn.execute(
            update(s.runs)
            .where(r.id == self.run_id, r.status == status)
            .values(
                cancel_requested=True,
                wake_at=tx.now,  # a parked run wakes at once to roll back
                updated_at=tx.now,
            )
        )
        tx.defer(
            s.events, [event_row(self.run_id, None, "CANCEL_REQUESTED", None, self.by, tx.now)]
        )
        tx.notify()
        return str(status)


@dataclass
class Deliver:
    """One firing (a webhook delivery, a schedule tick, a poll) in one transaction: stored
    once per key, its run started."""

    trigger_id: str
    key: str
    event: Any
    payload: Any
    create: CreateRun | None
    status: str
    error: str | None = None
    #: ``webhook``, ``schedule`` or ``poller``.
    source: str = "webhook"
    #: SHA-256 (hex) of a webhook's signed body: a body seen before is a duplicate.
    body: str | None = None

    def apply(self, tx: WriteTx) -> tuple[int, str, list[str], bool, RunRecord | None]:
        """``(delivery id, status, run ids, created, run)``; a known key returns the first.

        A webhook's trigger must still exist and be enabled (the caller checked it from a
        cache): :class:`NotFound` otherwise, with nothing written.
        """
        result = deliver_all(tx, [self])[0]
        if isinstance(result, LockgateError):
            raise result
        return result  # type: ignore[no-any-return]


def deliver_all(tx: WriteTx, ops: Sequence[Deliver]) -> list[Any]:
    """Apply many deliveries with a few statements in all (group commit for intake): the
    triggers checked in one query, the deliveries inserted in one, their runs in one.

    Each slot holds the op's result, or :class:`NotFound` for a webhook whose trigger is
    gone or disabled (that op writes nothing).
    """
    results: list[Any] = [None] * len(ops)
    webhooks = sorted({op.trigger_id for op in ops if op.source == "webhook"})
    live: set[str] = set()
    for start in range(0, len(webhooks), ROWS_PER_INSERT):
        ids = webhooks[start : start + ROWS_PER_INSERT]
        marks = ", ".join(f":t{n}" for n in range(len(ids)))
        rows = tx.fetch_rows(
            f"SELECT id FROM triggers WHERE enabled AND id IN ({marks})",  # noqa: S608
            {f"t{n}": tid for n, tid in enumerate(ids)},
        )
        live.update(row[0] for row in rows)
    todo = []
    for i, op in enumerate(ops):
        if op.source == "webhook" and op.trigger_id not in live:
            results[i] = NotFound("no such trigger")
        else:
            todo.append(i)
    todo, repeats = _replays(tx, ops, todo, results)
    new_rows = [
        {
            "trigger_id": ops[i].trigger_id,
            "key": ops[i].key,
            "status": ops[i].status,
            "attempts": 1,
            "error": ops[i].error,
            "event": _json(ops[i].event),
            "payload": _json(ops[i].payload),
            "run_ids": _json([c.run_id] if (c := ops[i].create) is not None else []),
            "received_at": tx.now,
            "updated_at": tx.now,
            "source": ops[i].source,
            "body_sha256": ops[i].body,
        }
        for i in todo
    ]
    returned = tx.insert_rows(s.deliveries, new_rows, "trigger_id, key", "id, trigger_id, key")
    stored = {(row[1], row[2]): int(row[0]) for row in returned}
    # A key stored by this batch belongs to its first op; later ones are duplicates.
    owners: dict[tuple[str, str], int] = {}
    creating = []
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.key)
        if where in stored and where not in owners:
            owners[where] = i
            if op.create is not None:
                creating.append(i)
    creates = [c for c in (ops[i].create for i in creating) if c is not None]
    runs = dict(zip(creating, create_runs(tx, creates), strict=True))
    d = s.deliveries.c
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.key)
        if owners.get(where) != i:
            if where in owners:  # the same key twice in this batch
                first = ops[owners[where]]
                ids = [runs[owners[where]][0].id] if owners[where] in runs else []
                results[i] = (stored[where], first.status, ids, False, None)
                continue
            found = tx.conn.execute(
                select(d.id, d.status, d.run_ids).where(
                    d.trigger_id == op.trigger_id, d.key == op.key
                )
            ).one()
            results[i] = (int(found.id), str(found.status), list(found.run_ids or []), False, None)
            continue
        run = runs[i][0] if i in runs else None
        if run is not None and op.create is not None and run.id != op.create.run_id:
            # Its idempotency key had started a run before: point at that one.
            tx.execute_many(
                "UPDATE deliveries SET run_ids = :run_ids WHERE id = :id",
                [{"run_ids": _json([run.id]), "id": stored[where]}],
            )
        results[i] = (stored[where], op.status, [run.id] if run else [], True, run)
    for i, origin in repeats.items():  # the same signed body twice in this batch
        found = results[origin]
        if isinstance(found, tuple):
            results[i] = (found[0], found[1], found[2], False, None)
        else:
            results[i] = found
    return results


def _replays(
    tx: WriteTx, ops: Sequence[Deliver], todo: list[int], results: list[Any]
) -> tuple[list[int], dict[int, int]]:
    """Fill in the results of deliveries whose signed body was stored before; the slots
    left to insert, and those repeating a body earlier in this batch (-> that slot)."""
    bodies = sorted({b for i in todo if (b := ops[i].body) is not None})
    seen: dict[tuple[str, str], tuple[int, str, list[str]]] = {}
    for start in range(0, len(bodies), ROWS_PER_INSERT):
        chunk = bodies[start : start + ROWS_PER_INSERT]
        marks = ", ".join(f":b{n}" for n in range(len(chunk)))
        rows = tx.fetch_rows(
            "SELECT trigger_id, body_sha256, id, status, run_ids FROM deliveries "  # noqa: S608
            f"WHERE body_sha256 IN ({marks})",
            {f"b{n}": b for n, b in enumerate(chunk)},
        )
        for trigger_id, body, delivery_id, status, run_ids in rows:
            ids = json.loads(run_ids) if isinstance(run_ids, str) else list(run_ids or [])
            seen.setdefault((trigger_id, body), (int(delivery_id), str(status), ids))
    left: list[int] = []
    firsts: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.body or "")
        if op.body is not None and where in seen:
            delivery_id, status, ids = seen[where]
            results[i] = (delivery_id, status, ids, False, None)
        elif op.body is not None and where in firsts:
            repeats[i] = firsts[where]
        else:
            if op.body is not None:
                firsts[where] = i
            left.append(i)
    return left, repeats


@dataclass
class FlagUnrunnable:
    """Mark active runs of ``pipelines`` whose version this worker cannot run."""

    pipelines: Sequence[tuple[str, str]]
    versions: Sequence[str]

    def apply(self, tx: WriteTx) -> int:
        """How many runs were newly flagged."""
        if not self.pipelines:
            return 0
        r = s.runs.c
        names = or_(*[and_(r.namespace == ns, r.pipeline == n) for ns, n in self.pipelines])
        done = tx.conn.execute(
            update(s.runs)
            .where(
                names,
                r.status.in_([st.value for st in ACTIVE_RUN_STATUSES]),
                r.version.notin_(list(self.versions)),
                r.flag.is_(None),
            )
            .values(flag=literal("pipeline version ") + r.version + literal(" is not registered"))
        )
        return int(done.rowcount)


@dataclass
class RegisterPipeline:
    """Record a pipeline version (once) so other processes can list and validate it."""

    version: str
    namespace: str
    name: str
    definition: dict[str, Any]

    def apply(self, tx: WriteTx) -> bool:
        """True when this version was new."""
        stmt = (
            tx.insert(s.pipelines)
            .values(
                version=self.version,
                namespace=self.namespace,
                name=self.name,
                definition=self.definition,
                registered_at=tx.now,
            )
            .on_conflict_do_nothing(index_elements=["version"])
        )
        return bool(tx.conn.execute(stmt).rowcount)
