"""Checkpoints: fenced state changes of runs, applied many at once (group commit's core)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    select,
)

from lockgate.errors import (
    StaleLease,
)
from lockgate.store import schema as s
from lockgate.store.ops import WriteTx, db_values, event_row, update_sql


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
    #: The key the request is stored under (default: the step's name).
    approval_key: str | None = None

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
                .values(
                    run_id=self.run_id,
                    step=self.approval_key or self.step,
                    opened_at=tx.now,
                    **self.approval,
                )
                .on_conflict_do_nothing(index_elements=["run_id", "step"])
            )


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
        sql = update_sql(s.runs, (*columns, "updated_at"), "id = :_id AND lease_token = :_token")
        params = [
            {
                **db_values(s.runs, cp.run),
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
        sql = update_sql(s.steps, columns, "run_id = :_run AND name = :_step")
        params = [
            {**db_values(s.steps, cp.step_values), "_run": cp.run_id, "_step": cp.step}
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
