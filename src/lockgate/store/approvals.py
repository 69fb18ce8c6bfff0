"""Approvals: requests stored as rendered, decisions ordered by the request row's lock.

The decision that settles a step (the quorum reached, or the first reject) and every later
decision are ordered in one transaction by locking the step's ``approvals`` row (``FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway). Once a
step is settled, a later decision is refused with the outcome and who settled it, so an
answered decision always counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, tuple_, update

from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.errors import Conflict, InvalidState, LockgateError, NotFound, RunNotFound
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
    """Record one subject's decision on open approval steps, one per run (many at once
    for a bulk decision); settle each step whose decisions reach the quorum or reject,
    and wake its run to act on it. A few statements serve every step in the list."""

    items: Sequence[tuple[str, str]]  # (run id, step)
    decision: str
    by: str
    comment: str | None = None
    input: Any = None

    def apply(self, tx: WriteTx) -> list[DecisionResult | LockgateError]:
        """For each item, the decision and whether it settled its step, or why it was
        refused (a refused item leaves no trace and does not hold up the others)."""
        r, a, d = s.runs.c, s.approvals.c, s.decisions.c
        pairs = list(dict.fromkeys((run_id, step) for run_id, step in self.items))
        ids = list(dict.fromkeys(run_id for run_id, _ in pairs))
        runs = {
            row.id: row
            for row in tx.conn.execute(
                select(r.id, r.status, r.cancel_requested).where(r.id.in_(ids))
            )
        }
        # Locked in one order, so that two bulk decisions cannot deadlock on each other.
        requests = {
            (rec.run_id, rec.step): rec
            for rec in map(
                approval_record,
                tx.conn.execute(
                    select(s.approvals)
                    .where(tuple_(a.run_id, a.step).in_(pairs))
                    .order_by(a.run_id, a.step)
                    .with_for_update()
                ),
            )
        }
        earlier = {
            (row.run_id, row.step): row.decision
            for row in tx.conn.execute(
                select(d.run_id, d.step, d.decision).where(
                    d.by == self.by, tuple_(d.run_id, d.step).in_(pairs)
                )
            )
        }
        outcomes: dict[tuple[str, str], LockgateError | dict[str, Any]] = {}
        for pair in pairs:
            try:
                self._check(tx, pair, runs.get(pair[0]), requests.get(pair), earlier.get(pair))
            except LockgateError as exc:
                outcomes[pair] = exc
                continue
            outcomes[pair] = {
                "run_id": pair[0],
                "step": pair[1],
                "decision": self.decision,
                "by": self.by,
                "comment": self.comment,
                "input": self.input,
                "at": tx.now,
            }
        rows = [row for row in outcomes.values() if isinstance(row, dict)]
        if rows:
            self._record(tx, rows, requests)
        seen: set[tuple[str, str]] = set()
        results: list[DecisionResult | LockgateError] = []
        for pair in self.items:
            outcome = outcomes[pair]
            if pair in seen and not isinstance(outcome, LockgateError):
                outcome = Conflict(f"{self.by} decides once on step {pair[1]!r} of run {pair[0]}")
            seen.add(pair)
            if isinstance(outcome, LockgateError):
                results.append(outcome)
                continue
            settled = outcome.pop("settled")
            new_id = outcome.pop("id")
            results.append(
                DecisionResult(DecisionRecord(id=new_id, **outcome), settled is not None, settled)
            )
        return results

    def _check(
        self,
        tx: WriteTx,
        pair: tuple[str, str],
        run: Any,
        request: ApprovalRecord | None,
        earlier: str | None,
    ) -> None:
        run_id, step = pair
        if run is None:
            raise RunNotFound(f"no run {run_id!r}")
        if request is None:
            st = s.steps.c
            status = tx.conn.execute(
                select(st.status).where(st.run_id == run_id, st.name == step)
            ).scalar()
            if status is None:
                raise NotFound(f"run {run_id} has no step {step!r}")
            raise InvalidState(
                f"step {step!r} of run {run_id} is {status}, not waiting for a decision",
                details={"status": status},
            )
        if request.outcome is not None:
            raise settled_conflict(request)
        if run.cancel_requested or RunStatus(run.status).terminal:
            terminal = RunStatus(run.status).terminal
            state = run.status if terminal else "being cancelled"
            raise InvalidState(
                f"run {run_id} is {state}; it is not waiting for a decision",
                details={"status": run.status},
            )
        if earlier is not None:
            raise Conflict(
                f"{self.by} already decided ({earlier}) on step {step!r} of run {run_id}"
            )

    def _record(
        self,
        tx: WriteTx,
        rows: list[dict[str, Any]],
        requests: dict[tuple[str, str], ApprovalRecord],
    ) -> None:
        """Insert the decisions that count, settle the steps they settle, wake those runs."""
        a, d, r = s.approvals.c, s.decisions.c, s.runs.c
        inserted = tx.conn.execute(
            s.decisions.insert().returning(d.id, sort_by_parameter_order=True), rows
        ).all()
        for row, (new_id,) in zip(rows, inserted, strict=True):
            row["id"] = int(new_id)
        keys = [(row["run_id"], row["step"]) for row in rows]
        approving = self.decision == "approve"
        counts: dict[tuple[str, str], int] = {}
        if approving:
            counts = {
                (row.run_id, row.step): int(row.n)
                for row in tx.conn.execute(
                    select(d.run_id, d.step, func.count().label("n"))
                    .where(d.decision == "approve", tuple_(d.run_id, d.step).in_(keys))
                    .group_by(d.run_id, d.step)
                )
            }
        settling = []
        for row, key in zip(rows, keys, strict=True):
            if not approving:  # a reject, or a failed step's fate: the first one settles
                row["settled"] = REJECTED if self.decision == "reject" else self.decision
            else:
                required = int(requests[key].request.get("required", 1))
                row["settled"] = APPROVED if counts.get(key, 0) >= required else None
            if row["settled"] is not None:
                settling.append({"r": key[0], "st": key[1], "o": row["settled"]})
        if settling:
            tx.conn.execute(
                update(s.approvals)
                .where(a.run_id == bindparam("r"), a.step == bindparam("st"))
                .values(outcome=bindparam("o"), settled_by=self.by, settled_at=tx.now),
                settling,
            )
            tx.conn.execute(
                update(s.runs)
                .where(r.id.in_([x["r"] for x in settling]), r.status == RunStatus.WAITING.value)
                .values(wake_at=tx.now, updated_at=tx.now)
            )
            tx.notify()
        events, audit = [], []
        for row in rows:
            note = f"{self.decision} by {self.by}" + (f": {self.comment}" if self.comment else "")
            if row["settled"] is not None:
                note += f" (settles the step: {row['settled']})"
            events.append(event_row(row["run_id"], row["step"], "DECISION", None, note, tx.now))
            details = {"step": row["step"], "comment": self.comment, "settled": row["settled"]}
            audit.append(
                {
                    "at": tx.now,
                    "actor": self.by,
                    "action": f"decision.{self.decision}",
                    "target": row["run_id"],
                    "details": json.dumps(details),
                }
            )
        tx.defer(s.events, events)
        tx.defer(s.audit, audit)


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
