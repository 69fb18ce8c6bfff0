"""Write operations: each one is applied inside a (possibly shared) write transaction.

An op checks its guard first and raises before writing anything when the guard fails, so
that many ops can share one transaction (group commit) and a refused op leaves no trace.
Rows that need no answer (events, log lines, errors) are queued on the transaction and
inserted together at its end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Table, and_, func, literal, or_, select, update

from lockgate.core.statuses import ACTIVE_RUN_STATUSES, RunStatus, StepStatus
from lockgate.errors import InvalidState, RunNotFound, StaleLease
from lockgate.store import schema as s
from lockgate.store.records import Claimed, RunRecord, StepRecord

InsertFn = Callable[[Table], Any]


@dataclass
class WriteTx:
    """One open write transaction shared by a batch of ops."""

    conn: Connection
    now: float
    insert: InsertFn
    skip_locked: bool
    notify: Callable[[], None]
    deferred: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def defer(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` into ``table`` when the batch ends."""
        if rows:
            self.deferred[table].extend(rows)

    def flush(self) -> None:
        """Insert every deferred row, one statement per table."""
        for table, rows in self.deferred.items():
            self.conn.execute(table.insert(), rows)
        self.deferred.clear()


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


@dataclass
class CreateRun:
    """Insert a run with its NOT_STARTED steps; once per idempotency key."""

    run_id: str
    namespace: str
    pipeline: str
    version: str
    step_names: Sequence[str]
    params: Any
    noop: bool
    requested_by: str | None
    idempotency_key: str | None

    def apply(self, tx: WriteTx) -> tuple[str, bool]:
        """Returns ``(run id, created)``; an existing key returns the original run."""
        if self.idempotency_key is not None:
            found = tx.conn.execute(
                select(s.runs.c.id).where(s.runs.c.idempotency_key == self.idempotency_key)
            ).scalar()
            if found is not None:
                return str(found), False
        row = {
            "id": self.run_id,
            "namespace": self.namespace,
            "pipeline": self.pipeline,
            "version": self.version,
            "status": RunStatus.PENDING.value,
            "params": self.params,
            "context": {},
            "noop": self.noop,
            "requested_by": self.requested_by,
            "idempotency_key": self.idempotency_key,
            "cancel_requested": False,
            "lease_token": 0,
            "wake_at": tx.now,
            "created_at": tx.now,
            "updated_at": tx.now,
        }
        stmt = tx.insert(s.runs).values(row)
        if self.idempotency_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        inserted = tx.conn.execute(stmt.returning(s.runs.c.id)).scalar()
        if inserted is None:  # another process won the race for this key
            found = tx.conn.execute(
                select(s.runs.c.id).where(s.runs.c.idempotency_key == self.idempotency_key)
            ).scalar_one()
            return str(found), False
        tx.conn.execute(
            s.steps.insert(),
            [
                {
                    "run_id": self.run_id,
                    "name": name,
                    "position": i,
                    "status": StepStatus.NOT_STARTED.value,
                    "attempt": 0,
                }
                for i, name in enumerate(self.step_names)
            ],
        )
        tx.defer(s.events, [_event(self.run_id, None, RunStatus.PENDING, None, None, tx.now)])
        tx.notify()
        return self.run_id, True


def _event(
    run_id: str, step: str | None, status: str, attempt: int | None, message: str | None, at: float
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": step,
        "status": str(status),
        "attempt": attempt,
        "message": message,
        "at": at,
    }


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
        r = s.runs.c
        due = (
            select(r.id)
            .where(
                r.wake_at <= tx.now,
                r.status.in_([st.value for st in ACTIVE_RUN_STATUSES]),
                or_(r.lease_expires_at.is_(None), r.lease_expires_at < tx.now),
                r.version.in_(list(self.versions)),
            )
            .order_by(r.wake_at)
            .limit(self.limit)
        )
        if self.skip_locked_supported(tx):
            due = due.with_for_update(skip_locked=True)
        rows = tx.conn.execute(
            update(s.runs)
            .where(r.id.in_(due.scalar_subquery()))
            .values(
                lease_owner=self.worker_id,
                lease_token=r.lease_token + 1,
                lease_expires_at=tx.now + self.lease_seconds,
                flag=None,
            )
            .returning(*s.runs.columns)
        ).all()
        if not rows:
            return []
        claimed = [run_record(row) for row in rows]
        by_run: dict[str, list[StepRecord]] = defaultdict(list)
        step_rows = tx.conn.execute(
            select(s.steps)
            .where(s.steps.c.run_id.in_([c.id for c in claimed]))
            .order_by(s.steps.c.run_id, s.steps.c.position)
        )
        for row in step_rows:
            rec = step_record(row)
            by_run[rec.run_id].append(rec)
        return [Claimed(run=c, steps=tuple(by_run[c.id])) for c in claimed]

    @staticmethod
    def skip_locked_supported(tx: WriteTx) -> bool:
        """Only PostgreSQL can skip rows another claimer holds."""
        return tx.skip_locked


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

    def apply(self, tx: WriteTx) -> None:
        """Write it all, or raise :class:`StaleLease` having written nothing."""
        r = s.runs.c
        done = tx.conn.execute(
            update(s.runs)
            .where(r.id == self.run_id, r.lease_token == self.token)
            .values(updated_at=tx.now, **self.run)
        )
        if done.rowcount != 1:
            raise StaleLease(f"run {self.run_id}: lease token {self.token} is no longer current")
        if self.step is not None and self.step_values:
            tx.conn.execute(
                update(s.steps)
                .where(s.steps.c.run_id == self.run_id, s.steps.c.name == self.step)
                .values(**self.step_values)
            )
        tx.defer(
            s.events,
            [_event(self.run_id, st, status, a, m, tx.now) for st, status, a, m in self.events],
        )
        tx.defer(s.run_errors, [{"run_id": self.run_id, "at": tx.now, **e} for e in self.errors])
        tx.defer(s.step_logs, self.logs)
        if self.run.get("wake_at") is not None or self.run.get("lease_owner", 0) is None:
            tx.notify()


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
                wake_at=func.coalesce(r.wake_at, tx.now),
                updated_at=tx.now,
            )
        )
        tx.defer(s.events, [_event(self.run_id, None, "CANCEL_REQUESTED", None, self.by, tx.now)])
        tx.notify()
        return str(status)


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


@dataclass
class RegisterWorker:
    """Record a worker process."""

    worker_id: str
    hostname: str
    pid: int
    stopped: bool = False

    def apply(self, tx: WriteTx) -> None:
        """Insert the worker, or mark it stopped."""
        if self.stopped:
            tx.conn.execute(
                update(s.workers)
                .where(s.workers.c.id == self.worker_id)
                .values(stopped_at=tx.now, heartbeat_at=tx.now)
            )
            return
        tx.conn.execute(
            s.workers.insert().values(
                id=self.worker_id,
                hostname=self.hostname,
                pid=self.pid,
                started_at=tx.now,
                heartbeat_at=tx.now,
            )
        )
