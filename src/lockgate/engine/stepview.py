"""What a step of a run sees beyond its input: its approvals desk, and a save that is
durable when it returns; both work on the run's ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lockgate.core.codec import encode
from lockgate.core.context import ApprovalState
from lockgate.engine.ledger import RunLedger
from lockgate.records import ApprovalRecord, DecisionRecord
from lockgate.store.approvals import ExpireApproval
from lockgate.store.checkpoints import Checkpoint


class StoredApprovals:
    """Where one approval step of this run asks for decisions and reads them."""

    def __init__(self, ledger: RunLedger, step: str) -> None:
        self._ledger = ledger
        self._step = step

    async def state(self) -> ApprovalState | None:
        """The stored request with its decisions; ``None`` before the step asked."""
        store, run_id = self._ledger.env.store, self._ledger.run.id
        record, decisions = await asyncio.to_thread(store.approval_state, run_id, self._step)
        if record is None:
            return None
        waited(self._ledger, f"approval {self._step}", record, len(decisions))
        return _state(record, decisions)

    def ask(self, request: Mapping[str, Any], expires_at: float | None) -> None:
        """Keep ``request`` for the checkpoint that parks the step (stored once)."""
        self._ledger.asking[self._step] = {
            "request": dict(request),
            "requested_by": self._ledger.run.requested_by,
            "expires_at": expires_at,
        }

    async def expire(self, outcome: str) -> ApprovalState:
        """Settle by the timeout policy unless a decision came first; the state either way."""
        op = ExpireApproval(self._ledger.run.id, self._step, outcome)
        record: ApprovalRecord = await self._ledger.env.committer.apply(op)
        store = self._ledger.env.store
        decisions = await asyncio.to_thread(store.get_decisions, record.run_id, self._step)
        waited(self._ledger, f"approval {self._step}", record, len(decisions))
        return _state(record, decisions)


def waited(
    ledger: RunLedger, name: str, record: ApprovalRecord, decisions: int | None = None
) -> None:
    """A settled request's wait, from its opening to its settling, as a span of the run."""
    if not ledger.trace.on or record.outcome is None or record.settled_at is None:
        return
    attributes: dict[str, str | int] = {
        "lockgate.approval.outcome": record.outcome,
        "lockgate.approval.settled_by": record.settled_by or "",
    }
    if decisions is not None:
        attributes["lockgate.approval.decisions"] = decisions
    ledger.trace.waited(name, record.opened_at, record.settled_at, attributes)


def _state(record: ApprovalRecord, decisions: list[DecisionRecord]) -> ApprovalState:
    return ApprovalState(
        request=record.request,
        expires_at=record.expires_at,
        outcome=record.outcome,
        settled_by=record.settled_by,
        decisions=decisions,
    )


class SaveKeeper:
    """Writes what a step saves at once, fenced by the run's lease: ``ctx.save`` from a
    sync step's thread through the worker's committer, from an async step's own loop as one
    small write of its own (the loop waits for it); ``await ctx.asave`` through the
    committer, the loop going on."""

    def __init__(self, ledger: RunLedger, step: str) -> None:
        self._ledger = ledger
        self._step = step
        self._loop = asyncio.get_running_loop()

    def _checkpoint(self, data: Any) -> Checkpoint:
        ledger = self._ledger
        values = {"saved": encode(None, data, "saved data")}
        return Checkpoint(
            run_id=ledger.run.id, token=ledger.token, step=self._step, step_values=values
        )

    async def commit(self, data: Any) -> None:
        """Write ``data`` through the worker's committer; the loop goes on meanwhile."""
        await self._ledger.env.committer.apply(self._checkpoint(data))

    def __call__(self, data: Any) -> None:
        cp = self._checkpoint(data)
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        committer = self._ledger.env.committer
        if on_loop:
            self._ledger.env.store.apply(cp)
        else:
            asyncio.run_coroutine_threadsafe(committer.apply(cp), self._loop).result()
