"""Rolling a run back: the failed step's own rollback, then every completed step's, newest
first, each checkpointed; the run's final status."""

from __future__ import annotations

from lockgate.core.codec import decode
from lockgate.core.hooks import HookPoint
from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.core.step import Step
from lockgate.engine.calls import describe, invoke
from lockgate.engine.ledger import RunLedger
from lockgate.engine.runcode import RunCode
from lockgate.errors import (
    NothingToUndo,
    StepError,
)
from lockgate.observability.tracing import Attributes
from lockgate.records import StepRecord
from lockgate.store.checkpoints import Checkpoint

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


async def start_rollback(
    ledger: RunLedger, code: RunCode, cp: Checkpoint | None, reason: str
) -> None:
    """Move the run to ROLLING_BACK (with ``cp``, the failure's checkpoint), then roll back."""
    cp = cp if cp is not None else ledger.checkpoint(None)
    if ledger.cancel_requested and cp.step is None:
        _cancel_parked(ledger, cp)
    ledger.status = RunStatus.ROLLING_BACK
    cp.events.append((None, RunStatus.ROLLING_BACK, None, reason))
    cp.run.update(status=RunStatus.ROLLING_BACK.value, error=ledger.env.mask(reason))
    if ledger.cause is None:
        ledger.cause = StepError(reason)
    await ledger.commit(cp)
    if cp.step is not None and cp.step_values:
        ledger.remember(cp.step, cp.step_values)
    await roll_back(ledger, code)


#: Step statuses of a step parked in the store (an approval, a sleep, a retry's delay, a
#: failure waiting for a decision).
PARKED = {StepStatus.WAITING, StepStatus.RETRYING}


def _cancel_parked(ledger: RunLedger, cp: Checkpoint) -> None:
    """A cancel found a step parked: it ends CANCELLED, with its event, in the checkpoint
    that starts the rollback, so nothing wakes it later."""
    for step in ledger.pipeline.steps:
        rec = ledger.steps[step.name]
        if StepStatus(rec.status) in PARKED:
            message = f"step {step.name!r} stopped while it waited: the run was cancelled"
            cp.step = step.name
            cp.step_values = {"status": StepStatus.CANCELLED.value, "error": message}
            cp.events.append((step.name, StepStatus.CANCELLED, rec.attempt, message))
            ledger.logs.add(step.name, "error", message)
            return


async def roll_back(ledger: RunLedger, code: RunCode) -> None:
    """Run the rollbacks still to do, newest step first, and record the run's end."""
    error = cause(ledger)
    with ledger.trace.span(
        "rollback", {"lockgate.rollback.cause": describe(error) if error else ""}
    ):
        await code.fire(HookPoint.ROLLING_BACK, error=describe(error) if error else None)
        for step in reversed(ledger.pipeline.steps):
            rec = ledger.steps[step.name]
            if StepStatus(rec.status) not in TO_UNDO or step.rollback_fn is None:
                continue
            await roll_back_step(ledger, code, step, rec)
    statuses = {StepStatus(r.status) for r in ledger.steps.values()}
    if StepStatus.ROLLBACK_FAILED in statuses:
        final = RunStatus.ROLLBACK_FAILED
    elif ledger.cancel_requested:
        final = RunStatus.CANCELLED
    elif StepStatus.ROLLED_BACK in statuses:
        final = RunStatus.ROLLED_BACK
    else:
        final = RunStatus.FAILED
    ledger.status = final
    await code.fire(HookPoint.RUN_FINISHED, status=final)
    cp = ledger.checkpoint(None)
    ledger.finish(cp)
    await ledger.commit(cp)
    ledger.finished()
    if ledger.env.metrics:
        ledger.env.metrics.runs_finished.labels(final.value).inc()


async def roll_back_step(ledger: RunLedger, code: RunCode, step: Step, rec: StepRecord) -> None:
    """One step's rollback, checkpointed; a failure is recorded and the others go on."""
    assert step.rollback_fn is not None
    ctx = code.context(step, rec.attempt)
    ctx.saved = rec.saved
    ctx.error = cause(ledger)
    cp = ledger.checkpoint(step.name)
    cp.events.append((step.name, StepStatus.ROLLING_BACK, rec.attempt, None))
    attributes: Attributes = {
        "cicd.pipeline.task.name": step.name,
        "lockgate.step.attempt": rec.attempt,
    }
    try:
        with ledger.trace.span(f"rollback {step.name}", attributes) as span:  # an error marks it
            ctx.traceparent = span.traceparent  # what the rollback calls joins the trace
            value = decode(step.input_type, rec.input, ledger.where(step.name))
            await invoke(step.rollback_fn, ctx, value)
    except NothingToUndo as exc:
        # The failed step's own rollback needs the output it never made: skipped.
        ledger.logs.add(step.name, "info", f"rollback skipped: {exc.message}")
        cp.events.append((step.name, "ROLLBACK_SKIPPED", rec.attempt, exc.message))
    except Exception as exc:
        message = describe(exc)
        ledger.logs.add(step.name, "error", f"rollback failed: {message}")
        cp.errors.append(ledger.error_row(step.name, rec.attempt, exc))
        # The step's own error (a failed step's cause) stays first.
        error = f"{rec.error}; rollback failed: {message}" if rec.error else message
        cp.step_values = {"status": StepStatus.ROLLBACK_FAILED.value, "error": error}
        cp.events.append((step.name, StepStatus.ROLLBACK_FAILED, rec.attempt, message))
    else:
        cp.step_values = {"status": StepStatus.ROLLED_BACK.value}
        cp.events.append((step.name, StepStatus.ROLLED_BACK, rec.attempt, None))
    await ledger.commit(cp)
    ledger.remember(step.name, cp.step_values)


def cause(ledger: RunLedger) -> BaseException | None:
    """The error that made the run roll back (as recorded, after a resume)."""
    if ledger.cause is None and ledger.run.error:
        ledger.cause = StepError(ledger.run.error)
    return ledger.cause
