"""What the store reads: runs and their parts, approvals, events, logs, the audit log,
pipelines and workers; one snapshot each, through :meth:`StoreReads.read`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, func, select, tuple_

from lockgate.core.statuses import ACTIVE_RUN_STATUSES
from lockgate.errors import (
    RunNotFound,
)
from lockgate.records import (
    ApprovalRecord,
    AttemptRecord,
    AuditRecord,
    DecisionRecord,
    ErrorRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
    StepRecord,
)
from lockgate.store import schema as s
from lockgate.store.approvals import approval_record, open_approvals_query
from lockgate.store.attempts import ATTEMPT_EVENTS, attempts_from
from lockgate.store.ops import RUN_BY_ID, run_record, step_record
from lockgate.store.workers import WorkerRecord, get_worker_query, worker_record

T = TypeVar("T")

#: Upper bound of rows any list read returns.
MAX_PAGE = 1000


class StoreReads(ABC):
    """The store's reads, written once on top of :meth:`read` (which the store provides)."""

    @abstractmethod
    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a pooled read connection (one snapshot)."""

    def decision_targets(
        self, run_ids: Sequence[str], step: str | None
    ) -> dict[str, tuple[str, str | None, ApprovalRecord | None]]:
        """For each run of ``run_ids`` that exists, in one read: its status, its current
        step, and the approval request a decision would be on (``step``'s, or else the
        run's latest)."""
        r, a = s.runs.c, s.approvals.c
        ids = list(dict.fromkeys(run_ids))
        runs = select(r.id, r.status, r.current_step).where(r.id.in_(ids))
        asked = select(s.approvals).where(a.run_id.in_(ids)).order_by(a.opened_at)
        if step is not None:
            asked = asked.where(a.step == step)

        def both(c: Connection) -> tuple[list[Any], list[Any]]:
            return list(c.execute(runs).all()), list(c.execute(asked).all())

        found, requests = self.read(both)
        latest = {row.run_id: approval_record(row) for row in requests}  # the last wins
        return {row.id: (row.status, row.current_step, latest.get(row.id)) for row in found}

    def approval_state(
        self, run_id: str, step: str
    ) -> tuple[ApprovalRecord | None, list[DecisionRecord]]:
        """An approval step's stored request and its decisions so far, in one read."""
        a, d = s.approvals.c, s.decisions.c
        request = select(s.approvals).where(a.run_id == run_id, a.step == step)
        decided = select(s.decisions).where(d.run_id == run_id, d.step == step).order_by(d.id)

        def both(c: Connection) -> tuple[Any, list[Any]]:
            return c.execute(request).first(), list(c.execute(decided).all())

        row, rows = self.read(both)
        record = None if row is None else approval_record(row)
        return record, [DecisionRecord(**r._mapping) for r in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; :class:`RunNotFound` if there is none."""
        row = self.read(lambda c: c.execute(RUN_BY_ID, {"id": run_id}).first())
        if row is None:
            raise RunNotFound(f"no run {run_id!r}")
        return run_record(row)

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        namespace: str | None = None,
        requested_by: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest runs first, filtered (``requested_by``: a prefix of who or what started
        the run; ``since``: created at or after); ``before`` is the (created_at, id) page
        cursor."""
        r = s.runs.c
        stmt = select(s.runs).order_by(r.created_at.desc(), r.id.desc())
        if status:
            stmt = stmt.where(r.status == status)
        if pipeline:
            stmt = stmt.where(r.pipeline == pipeline)
        if namespace:
            stmt = stmt.where(r.namespace == namespace)
        if requested_by:
            # What started it: "schedule:", "github:", a trigger's id, a person (a prefix).
            stmt = stmt.where(r.requested_by.startswith(requested_by, autoescape=True))
        if since is not None:
            stmt = stmt.where(r.created_at >= since)
        if before is not None:
            at, rid = before
            # A row-value comparison: both databases walk the (created_at, id) index from the
            # cursor (the equivalent OR of two comparisons made SQLite scan: 120 ms at 1M runs).
            stmt = stmt.where(tuple_(r.created_at, r.id) < tuple_(at, rid))
        stmt = stmt.limit(max(1, min(limit, MAX_PAGE)))
        return [run_record(row) for row in self.read(lambda c: c.execute(stmt).all())]

    def count_active(self) -> int:
        """Runs not yet finished."""
        active = [x.value for x in ACTIVE_RUN_STATUSES]
        stmt = select(func.count()).select_from(s.runs).where(s.runs.c.status.in_(active))
        return int(self.read(lambda c: c.execute(stmt).scalar_one()))

    def queue_stats(self, now: float) -> tuple[int, float | None]:
        """(runs due and not held by a worker, the oldest of their wake-up times)."""
        r = s.runs.c
        stmt = select(func.count(), func.min(r.wake_at)).where(
            r.wake_at <= now,
            r.status.in_([x.value for x in ACTIVE_RUN_STATUSES]),
            (r.lease_expires_at.is_(None)) | (r.lease_expires_at < now),
        )
        count, oldest = self.read(lambda c: c.execute(stmt).one())
        return int(count), oldest

    def cancel_requested(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` have a pending cancel request."""
        r = s.runs.c
        stmt = select(r.id).where(r.id.in_(list(run_ids)), r.cancel_requested.is_(True))
        return {str(x) for x in self.read(lambda c: c.execute(stmt).scalars().all())}

    def get_decisions(self, run_id: str, step: str | None = None) -> list[DecisionRecord]:
        """Decisions on a run's approval steps, oldest first."""
        d = s.decisions.c
        stmt = select(s.decisions).where(d.run_id == run_id).order_by(d.id)
        if step is not None:
            stmt = stmt.where(d.step == step)
        return [DecisionRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_approval(self, run_id: str, step: str | None = None) -> ApprovalRecord | None:
        """An approval step's stored request and outcome (``None`` until it asked); without
        ``step``, the run's latest."""
        a = s.approvals.c
        stmt = select(s.approvals).where(a.run_id == run_id)
        if step is not None:
            stmt = stmt.where(a.step == step)
        stmt = stmt.order_by(a.opened_at.desc()).limit(1)
        row = self.read(lambda c: c.execute(stmt).first())
        return None if row is None else approval_record(row)

    def pending_approvals(
        self, before: tuple[float, str, str] | None = None, limit: int = 100
    ) -> list[tuple[RunRecord, ApprovalRecord, list[DecisionRecord]]]:
        """Open approval steps with their runs and the decisions so far, oldest first
        (``before``: the ``(opened_at, run id, step)`` page cursor). Two queries however
        many there are: the inbox reads hundreds at once."""
        stmt = open_approvals_query(before, max(1, min(limit, MAX_PAGE)))
        stmt = stmt.add_columns(*[c.label(f"r__{c.name}") for c in s.runs.columns])

        def read(conn: Connection) -> tuple[list[Any], list[Any]]:
            rows = list(conn.execute(stmt).all())
            ids = sorted({row.run_id for row in rows})
            d = s.decisions.c
            decided = (
                list(conn.execute(select(s.decisions).where(d.run_id.in_(ids)).order_by(d.id)))
                if ids
                else []
            )
            return rows, decided

        rows, decided = self.read(read)
        by_step: dict[tuple[str, str], list[DecisionRecord]] = {}
        for row in decided:
            by_step.setdefault((row.run_id, row.step), []).append(DecisionRecord(**row._mapping))
        found = []
        for row in rows:
            m = row._mapping
            run = RunRecord(**{c.name: m[f"r__{c.name}"] for c in s.runs.columns})
            found.append((run, approval_record(row), by_step.get((row.run_id, row.step), [])))
        return found

    def get_audit(self, after: int = 0, limit: int = MAX_PAGE) -> list[AuditRecord]:
        """Audit entries after id ``after``, oldest first."""
        a = s.audit.c
        stmt = (
            select(s.audit).where(a.id > after).order_by(a.id).limit(max(1, min(limit, MAX_PAGE)))
        )
        return [AuditRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_events(self, run_id: str, after: int = 0, limit: int = MAX_PAGE) -> list[EventRecord]:
        """A run's events in order, after event id ``after``."""
        e = s.events.c
        stmt = (
            select(s.events)
            .where(e.run_id == run_id, e.id > after)
            .order_by(e.id)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        rows = self.read(lambda c: c.execute(stmt).all())
        return [EventRecord(**r._mapping) for r in rows]

    def get_worker(self, worker_id: str) -> WorkerRecord | None:
        """A worker identity and the process that last held it."""
        row = self.read(lambda c: c.execute(get_worker_query(worker_id)).first())
        return None if row is None else worker_record(row)

    def run_view(
        self, run_id: str
    ) -> tuple[RunRecord, list[StepRecord], list[AttemptRecord], list[ErrorRecord]]:
        """A run, its steps, their attempts and its errors, read in one snapshot (one
        connection, four statements); :class:`RunNotFound` if there is no such run."""
        e, x = s.events.c, s.run_errors.c
        steps = select(s.steps).where(s.steps.c.run_id == run_id).order_by(s.steps.c.position)
        started = (
            select(s.events)
            .where(e.run_id == run_id, e.attempt.is_not(None), e.status.in_(ATTEMPT_EVENTS))
            .order_by(e.id)
        )
        errors = select(s.run_errors).where(x.run_id == run_id).order_by(x.id).limit(MAX_PAGE)

        def read(c: Connection) -> tuple[Any, ...] | None:
            row = c.execute(RUN_BY_ID, {"id": run_id}).first()
            if row is None:
                return None
            return row, c.execute(steps).all(), c.execute(started).all(), c.execute(errors).all()

        found = self.read(read)
        if found is None:
            raise RunNotFound(f"no run {run_id!r}")
        run = run_record(found[0])
        step_records = [step_record(r) for r in found[1]]
        events = [EventRecord(**r._mapping) for r in found[2]]
        statuses = {st.name: st.status for st in step_records}
        return (
            run,
            step_records,
            attempts_from(events, run.status, statuses),
            [ErrorRecord(**r._mapping) for r in found[3]],
        )

    def get_errors(self, run_id: str) -> list[ErrorRecord]:
        """Errors raised in a run, in order."""
        e = s.run_errors.c
        stmt = select(s.run_errors).where(e.run_id == run_id).order_by(e.id).limit(MAX_PAGE)
        return [ErrorRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_logs(
        self, run_id: str, step: str | None = None, after: int = 0, limit: int = MAX_PAGE
    ) -> list[LogRecord]:
        """Log lines of a run (or one step) after line id ``after``."""
        g = s.step_logs.c
        stmt = select(s.step_logs).where(g.run_id == run_id, g.id > after)
        if step is not None:
            stmt = stmt.where(g.step == step)
        stmt = stmt.order_by(g.id).limit(max(1, min(limit, MAX_PAGE)))
        return [LogRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def pipeline_versions(self, name: str | None = None) -> list[PipelineRecord]:
        """Registered pipeline versions, newest first."""
        p = s.pipelines.c
        stmt = select(s.pipelines).order_by(p.registered_at.desc())
        if name is not None:
            stmt = stmt.where(p.name == name)
        return [PipelineRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]
