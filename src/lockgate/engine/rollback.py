"""Rolling a run back: the failed step's own rollback, then every completed step's, newest
first, each checkpointed; the run's final status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockgate.core.codec import decode
from lockgate.core.hooks import HookPoint
from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.core.step import Step
from lockgate.engine.calls import describe, invoke
from lockgate.errors import (
    NothingToUndo,
    StepError,
)
from lockgate.records import StepRecord
from lockgate.store.checkpoints import Checkpoint
from lockgate.tracing import Attributes

if TYPE_CHECKING:
    from lockgate.engine.execution import RunExecution

#: Step statuses whose effects a rollback must undo.
TO_UNDO = {
    StepStatus.COMPLETED,
    StepStatus.WAITING,
    StepStatus.FAILED,
    StepStatus.CANCELLED,
    StepStatus.RUNNING,
    StepStatus.RETRYING,
    StepStatus.ROLLING_BACK,
}


async def start_rollback(ex: RunExecution, cp: Checkpoint | None, reason: str) -> None:
    """Move the run to ROLLING_BACK (with ``cp``, the failure's checkpoint), then roll back."""
    cp = cp if cp is not None else ex._checkpoint(None)
    if ex.cancel_requested and cp.step is None:
        _cancel_parked(ex, cp)
    ex.status = RunStatus.ROLLING_BACK
    cp.events.append((None, RunStatus.ROLLING_BACK, None, reason))
    cp.run.update(status=RunStatus.ROLLING_BACK.value, error=ex.env.mask(reason))
    if ex.cause is None:
        ex.cause = StepError(reason)
    await ex._commit(cp)
    if cp.step is not None and cp.step_values:
        ex._remember(cp.step, cp.step_values)
    await roll_back(ex)


#: Step statuses of a step parked in the store (an approval, a sleep, a retry's delay, a
#: failure waiting for a decision).
PARKED = {StepStatus.WAITING, StepStatus.RETRYING}


def _cancel_parked(ex: RunExecution, cp: Checkpoint) -> None:
    """A cancel found a step parked: it ends CANCELLED, with its event, in the checkpoint
    that starts the rollback, so nothing wakes it later."""
    for step in ex.pipeline.steps:
        rec = ex.steps[step.name]
        if StepStatus(rec.status) in PARKED:
            message = f"step {step.name!r} stopped while it waited: the run was cancelled"
            cp.step = step.name
            cp.step_values = {"status": StepStatus.CANCELLED.value, "error": message}
            cp.events.append((step.name, StepStatus.CANCELLED, rec.attempt, message))
            ex.logs.add(step.name, "error", message)
            return


async def roll_back(ex: RunExecution) -> None:
    """Run the rollbacks still to do, newest step first, and record the run's end."""
    error = cause(ex)
    with ex.trace.span("rollback", {"lockgate.rollback.cause": describe(error) if error else ""}):
        await ex._fire(HookPoint.ROLLING_BACK, error=describe(error) if error else None)
        for step in reversed(ex.pipeline.steps):
            rec = ex.steps[step.name]
            if StepStatus(rec.status) not in TO_UNDO or step.rollback_fn is None:
                continue
            await roll_back_step(ex, step, rec)
    statuses = {StepStatus(r.status) for r in ex.steps.values()}
    if StepStatus.ROLLBACK_FAILED in statuses:
        final = RunStatus.ROLLBACK_FAILED
    elif ex.cancel_requested:
        final = RunStatus.CANCELLED
    elif StepStatus.ROLLED_BACK in statuses:
        final = RunStatus.ROLLED_BACK
    else:
        final = RunStatus.FAILED
    ex.status = final
    await ex._fire(HookPoint.RUN_FINISHED, status=final)
    cp = ex._checkpoint(None)
    ex._finish(cp)
    await ex._commit(cp)
    ex.finished()
    if ex.env.metrics:
        ex.env.metrics.runs_finished.labels(final.value).inc()


async def roll_back_step(ex: RunExecution, step: Step, rec: StepRecord) -> None:
    """One step's rollback, checkpointed; a failure is recorded and the others go on."""
    assert step.rollback_fn is not None
    ctx = ex._context(step, rec.attempt)
    ctx.saved = rec.saved
    ctx.error = cause(ex)
    cp = ex._checkpoint(step.name)
    cp.events.append((step.name, StepStatus.ROLLING_BACK, rec.attempt, None))
    attributes: Attributes = {
        "cicd.pipeline.task.name": step.name,
        "lockgate.step.attempt": rec.attempt,
    }
    try:
        with ex.trace.span(f"rollback {step.name}", attributes) as span:  # an error marks it
            ctx.traceparent = span.traceparent  # what the rollback calls joins the trace
            value = decode(step.input_type, rec.input, ex._where(step))
            await invoke(step.rollback_fn, ctx, value)
    except NothingToUndo as exc:
        # The failed step's own rollback needs the output it never made: skipped.
        ex.logs.add(step.name, "info", f"rollback skipped: {exc.message}")
        cp.events.append((step.name, "ROLLBACK_SKIPPED", rec.attempt, exc.message))
    except Exception as exc:
        message = describe(exc)
        ex.logs.add(step.name, "error", f"rollback failed: {message}")
        cp.errors.append(ex._error_row(step.name, rec.attempt, exc))
        # The step's own error (a failed step's cause) stays first.
        error = f"{rec.error}; rollback failed: {message}" if rec.error else message
        cp.step_values = {"status": StepStatus.ROLLBACK_FAILED.value, "error": error}
        cp.events.append((step.name, StepStatus.ROLLBACK_FAILED, rec.attempt, message))
    else:
        cp.step_values = {"status": StepStatus.ROLLED_BACK.value}
        cp.events.append((step.name, StepStatus.ROLLED_BACK, rec.attempt, None))
    await ex._commit(cp)
    ex._remember(step.name, cp.step_values)


def cause(ex: RunExecution) -> BaseException | None:
    """The error that made the run roll back (as recorded, after a resume)."""
    if ex.cause is None and ex.run.error:
        ex.cause = StepError(ex.run.error)
    return ex.cause
