"""What a step of a run sees: its context, its approvals desk, the outputs of its peers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lockgate.core.codec import encode
from lockgate.core.context import ApprovalState, StepContext
from lockgate.core.statuses import StepStatus
from lockgate.core.step import Step
from lockgate.records import ApprovalRecord, DecisionRecord, StepRecord
from lockgate.store.approvals import ExpireApproval
from lockgate.store.checkpoints import Checkpoint

if TYPE_CHECKING:
    from lockgate.engine.execution import RunExecution


class StoredApprovals:
    """Where one approval step of this run asks for decisions and reads them."""

    def __init__(self, execution: RunExecution, step: str) -> None:
        self._execution = execution
        self._step = step

    async def state(self) -> ApprovalState | None:
        """The stored request with its decisions; ``None`` before the step asked."""
        store, run_id = self._execution.env.store, self._execution.run.id
        record, decisions = await asyncio.to_thread(store.approval_state, run_id, self._step)
        if record is None:
            return None
        waited(self._execution, f"approval {self._step}", record, len(decisions))
        return _state(record, decisions)

    def ask(self, request: Mapping[str, Any], expires_at: float | None) -> None:
        """Keep ``request`` for the checkpoint that parks the step (stored once)."""
        self._execution.asking[self._step] = {
            "request": dict(request),
            "requested_by": self._execution.run.requested_by,
            "expires_at": expires_at,
        }

    async def expire(self, outcome: str) -> ApprovalState:
        """Settle by the timeout policy unless a decision came first; the state either way."""
        op = ExpireApproval(self._execution.run.id, self._step, outcome)
        record: ApprovalRecord = await self._execution.env.committer.apply(op)
        store = self._execution.env.store
        decisions = await asyncio.to_thread(store.get_decisions, record.run_id, self._step)
        waited(self._execution, f"approval {self._step}", record, len(decisions))
        return _state(record, decisions)


def waited(
    ex: RunExecution, name: str, record: ApprovalRecord, decisions: int | None = None
) -> None:
    """A settled request's wait, from its opening to its settling, as a span of the run."""
    if not ex.trace.on or record.outcome is None or record.settled_at is None:
        return
    attributes: dict[str, str | int] = {
        "lockgate.approval.outcome": record.outcome,
        "lockgate.approval.settled_by": record.settled_by or "",
    }
    if decisions is not None:
        attributes["lockgate.approval.decisions"] = decisions
    ex.trace.waited(name, record.opened_at, record.settled_at, attributes)


def _state(record: ApprovalRecord, decisions: list[DecisionRecord]) -> ApprovalState:
    return ApprovalState(
        request=record.request,
        expires_at=record.expires_at,
        outcome=record.outcome,
        settled_by=record.settled_by,
        decisions=decisions,
    )


class Outputs(Mapping[str, Any]):
    """A live, read-only view of the completed steps' outputs."""

    def __init__(self, steps: dict[str, StepRecord]) -> None:
        self._steps = steps

    def __getitem__(self, name: str) -> Any:
        rec = self._steps[name]
        if rec.status not in HAS_OUTPUT:
            raise KeyError(name)
        return rec.output

    def __iter__(self) -> Iterator[str]:
        return (n for n, r in self._steps.items() if r.status in HAS_OUTPUT)

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: Statuses of steps whose output is there to read (also while they are rolled back).
HAS_OUTPUT = {
    StepStatus.COMPLETED,
    StepStatus.ROLLING_BACK,
    StepStatus.ROLLED_BACK,
    StepStatus.ROLLBACK_FAILED,
}


class SaveKeeper:
    """Writes what a step saves (``ctx.save``) at once, fenced by the run's lease: from a
    sync step's thread through the worker's committer, from an async step's own loop as one
    small write of its own (the loop waits for it)."""

    def __init__(self, ex: RunExecution, step: str) -> None:
        self._ex = ex
        self._step = step
        self._loop = asyncio.get_running_loop()

    def __call__(self, data: Any) -> None:
        ex = self._ex
        values = {"saved": encode(None, data, "saved data")}
        cp = Checkpoint(run_id=ex.run.id, token=ex.token, step=self._step, step_values=values)
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            ex.env.store.apply(cp)
        else:
            asyncio.run_coroutine_threadsafe(ex.env.committer.apply(cp), self._loop).result()


def step_context(ex: RunExecution, step: Step, attempt: int) -> StepContext:
    """The context one attempt of ``step`` (or its rollback) receives."""
    rec = ex.steps[step.name]
    return StepContext(
        run_id=ex.run.id,
        pipeline=ex.pipeline.name,
        step=step.name,
        attempt=max(attempt, 1),
        params=ex._params,
        bag=ex.bag,
        noop=ex.run.noop,
        log=ex._logger(step.name),
        requested_by=ex.run.requested_by,
        saved=rec.saved,
        wait_until=rec.wait_until if rec.status == StepStatus.WAITING else None,
        outputs=ex.outputs,
        raw_params=ex.run.params,
        secrets=ex.env.settings.secrets,
        settings=ex.env.settings,
        approvals=StoredApprovals(ex, step.name),
        keeper=SaveKeeper(ex, step.name),
        # A step with a timeout gets its own event, so that its timing out does not
        # mark the whole run cancelled.
        cancel_event=ex.cancel_event if step.timeout is None else threading.Event(),
    )
