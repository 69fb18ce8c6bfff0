"""Approvals: requests stored as rendered, decisions ordered by the request row's lock.

The decision that settles a step (the quorum reached, or the first reject) and every later
decision are ordered in one transaction by locking the step's ``approvals`` row (``FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway). Once a
step is settled, a later decision is refused with the outcome and who settled it, so an
answered decision always counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, tuple_, update

from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.errors import Conflict, InvalidState, NotFound, RunNotFound
from lockgate.records import ApprovalRecord, DecisionRecord, DecisionResult
from lockgate.store import schema as s
from lockgate.store.ops import WriteTx, event_row

#: Outcomes of a settled approval step (the approval step kind names the same three).
APPROVED, REJECTED = "approved", "rejected"


def approval_record(row: Any) -> ApprovalRecord:
    """An ``approvals`` row as a record."""
    m = row._mapping
    return ApprovalRecord(**{c.name: m[c.name] for c in s.approvals.columns})


def settled_conflict(record: ApprovalRecord) -> InvalidState:
    """The refusal of a decision on a step that is already settled."""
    return InvalidState(
        f"step {record.step!r} of run {record.run_id} is not waiting for a decision: "
        f"it was settled already ({record.outcome} by {record.settled_by})",
        details={
            "outcome": record.outcome,
            "settled_by": record.settled_by,
            "settled_at": record.settled_at,
        },
    )


def _locked(conn: Connection, run_id: str, step: str) -> ApprovalRecord | None:
    a = s.approvals.c
    row = conn.execute(
        select(s.approvals).where(a.run_id == run_id, a.step == step).with_for_update()
    ).first()
    return None if row is None else approval_record(row)


@dataclass
class Decide:
    """Record one subject's decision on an open approval step; settle the step when the
    decision reaches the quorum or rejects, and wake its run to act on it."""

    run_id: str
    step: str
    decision: str
    by: str
    comment: str | None = None
    input: Any = None

    def apply(self, tx: WriteTx) -> DecisionResult:
        """The decision and whether it settled the step; refused unless it counts."""
        r, st, d = s.runs.c, s.steps.c, s.decisions.c
        run = tx.conn.execute(
            select(r.status, r.cancel_requested).where(r.id == self.run_id)
        ).first()
        if run is None:
            raise RunNotFound(f"no run {self.run_id!r}")
        request = _locked(tx.conn, self.run_id, self.step)
        if request is None:
            status = tx.conn.execute(
                select(st.status).where(st.run_id == self.run_id, st.name == self.step)
            ).scalar()
            if status is None:
                raise NotFound(f"run {self.run_id} has no step {self.step!r}")
            raise InvalidState(
                f"step {self.step!r} of run {self.run_id} is {status}, not waiting for a decision",
                details={"status": status},
            )
        if request.outcome is not None:
            raise settled_conflict(request)
        if run.cancel_requested or RunStatus(run.status).terminal:
            terminal = RunStatus(run.status).terminal
            state = run.status if terminal else "being cancelled"
            raise InvalidState(
                f"run {self.run_id} is {state}; it is not waiting for a decision",
                details={"status": run.status},
            )
        earlier = tx.conn.execute(
            select(d.decision).where(d.run_id == self.run_id, d.step == self.step, d.by == self.by)
        ).scalar()
        if earlier is not None:
            raise Conflict(
                f"{self.by} already decided ({earlier}) on step {self.step!r} of run {self.run_id}"
            )
        row = {
            "run_id": self.run_id,
            "step": self.step,
            "decision": self.decision,
            "by": self.by,
            "comment": self.comment,
            "input": self.input,
            "at": tx.now,
        }
        new_id = tx.conn.execute(s.decisions.insert().values(row).returning(d.id)).scalar_one()
        outcome = self._outcome(tx, int(request.request.get("required", 1)))
        if outcome is not None:
            tx.conn.execute(
                update(s.approvals)
                .where(s.approvals.c.run_id == self.run_id, s.approvals.c.step == self.step)
                .values(outcome=outcome, settled_by=self.by, settled_at=tx.now)
            )
            tx.conn.execute(
                update(s.runs)
                .where(r.id == self.run_id, r.status == RunStatus.WAITING.value)
                .values(wake_at=tx.now, updated_at=tx.now)
            )
            tx.notify()
        note = f"{self.decision} by {self.by}" + (f": {self.comment}" if self.comment else "")
        if outcome is not None:
            note += f" (settles the step: {outcome})"
        tx.defer(s.events, [event_row(self.run_id, self.step, "DECISION", None, note, tx.now)])
        audit = {"step": self.step, "comment": self.comment, "settled": outcome}
        tx.defer(
            s.audit,
            [
                {
                    "at": tx.now,
                    "actor": self.by,
                    "action": f"decision.{self.decision}",
                    "target": self.run_id,
                    "details": json.dumps(audit),
                }
            ],
        )
        return DecisionResult(DecisionRecord(id=int(new_id), **row), outcome is not None, outcome)

    def _outcome(self, tx: WriteTx, required: int) -> str | None:
        if self.decision in ("retry", "skip", "rollback"):
            return self.decision  # a failed step's fate: the first decision settles it
        if self.decision == "reject":
            return REJECTED
        d = s.decisions.c
        approvals = tx.conn.execute(
            select(func.count()).where(
                d.run_id == self.run_id, d.step == self.step, d.decision == "approve"
            )
        ).scalar_one()
        return APPROVED if approvals >= required else None


@dataclass
class ExpireApproval:
    """Settle an open approval step by its timeout policy, unless a decision settled it
    first; the step's state either way."""

    run_id: str
    step: str
    outcome: str

    def apply(self, tx: WriteTx) -> ApprovalRecord:
        """The approval as settled (by this timeout, or by the decision that came first)."""
        request = _locked(tx.conn, self.run_id, self.step)
        if request is None:
            raise NotFound(f"run {self.run_id} step {self.step!r} asked for no decision")
        if request.outcome is not None:
            return request
        a = s.approvals.c
        tx.conn.execute(
            update(s.approvals)
            .where(a.run_id == self.run_id, a.step == self.step)
            .values(outcome=self.outcome, settled_by="timeout", settled_at=tx.now)
        )
        note = f"no decision in time: {self.outcome} by the timeout policy"
        tx.defer(s.events, [event_row(self.run_id, self.step, "DECISION", None, note, tx.now)])
        return ApprovalRecord(
            **{
                **request.to_dict(),
                "outcome": self.outcome,
                "settled_by": "timeout",
                "settled_at": tx.now,
            },
        )


def open_approvals_query(before: tuple[float, str, str] | None, limit: int) -> Any:
    """Open approval steps of waiting runs, oldest first, after the keyset ``before``."""
    a, r = s.approvals.c, s.runs.c
    stmt = (
        select(s.approvals)
        .join(s.runs, r.id == a.run_id)
        .join(s.steps, and_(s.steps.c.run_id == a.run_id, s.steps.c.name == a.step))
        .where(
            a.outcome.is_(None),
            r.status == RunStatus.WAITING.value,
            s.steps.c.status == StepStatus.WAITING.value,
        )
        .order_by(a.opened_at, a.run_id, a.step)
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(tuple_(a.opened_at, a.run_id, a.step) > tuple_(*before))
    return stmt
