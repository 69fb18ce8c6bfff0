"""Writes of runs: creating them (once per idempotency key), cancelling, flagging those no
worker here can run, and recording pipeline versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    and_,
    literal,
    or_,
    select,
    update,
)

from lockgate.core.statuses import ACTIVE_RUN_STATUSES, RunStatus, StepStatus
from lockgate.errors import (
    InvalidState,
    RunNotFound,
)
from lockgate.records import RunRecord
from lockgate.store import schema as s
from lockgate.store.ops import RUN_BY_KEY, WriteTx, event_row, json_text, run_record, started_event


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
    #: The run this one runs again.
    rerun_of: str | None = None
    #: The first values of the run's context bag (``ctx.context``).
    context: dict[str, Any] | None = None
    #: The delivery that starts it (set by the delivery's write, which stores it first).
    delivery_id: int | None = None
    #: Its trace context (:meth:`lockgate.observability.tracing.Tracer.new_run`): the
    #: ``traceparent`` of the run's span and the id of that span's parent.
    trace: tuple[str, str | None] | None = None

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
            context=dict(self.context or {}),
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
            rerun_of=self.rerun_of,
            delivery_id=self.delivery_id,
            trace_context=self.trace[0] if self.trace else None,
            trace_parent=self.trace[1] if self.trace else None,
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
            "params": json_text(r.params),
            "context": json_text(r.context),
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
            "rerun_of": r.rerun_of,
            "delivery_id": r.delivery_id,
            "trace_context": r.trace_context,
            "trace_parent": r.trace_parent,
        }
        for r in records
    ]
    inserted = {row[0] for row in tx.insert_rows(s.runs, rows, "idempotency_key", "id")}
    results: list[tuple[RunRecord, bool]] = []
    for create, record in zip(creates, records, strict=True):
        if record.id not in inserted:  # its key was used before (maybe by another process)
            row = tx.conn.execute(RUN_BY_KEY, {"key": create.idempotency_key}).one()
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
