"""A step attempt that failed for good: its checkpoint, its hooks, and what follows (the
run waits for a decision when it asks on failure, else it rolls back)."""

from __future__ import annotations

from typing import Any

from lockgate.core.codec import encode
from lockgate.core.hooks import HookPoint
from lockgate.core.statuses import StepStatus
from lockgate.core.step import Step
from lockgate.engine import parking, rollback
from lockgate.engine.calls import describe
from lockgate.engine.ledger import RunLedger
from lockgate.engine.runcode import RunCode
from lockgate.engine.running import RunningWrite


async def fail_step(
    ledger: RunLedger,
    code: RunCode,
    step: Step,
    attempt: int,
    exc: BaseException,
    running: RunningWrite | None,
    saved: Any = None,
    status: StepStatus = StepStatus.FAILED,
) -> None:
    """Record ``step``'s attempt as ``status`` (failed or cancelled) with ``exc``, then park
    the run for a decision or start its rollback."""
    message = ledger.env.mask(describe(exc))
    ledger.cause = exc
    ledger.logs.add(step.name, "error", message)
    await code.fire(HookPoint.STEP_FAILED, step=step.name, error=message)
    values: dict[str, Any] = {"status": status.value, "attempt": attempt, "error": message}
    if running is not None:
        values["input"] = running.encoded_input
        values["started_at"] = running.started
    if saved is not None:
        values["saved"] = encode(None, saved, "saved data")
    cp = ledger.checkpoint(step.name)
    if running is not None:
        await running.settled()
        running.close_into(cp)
    cp.step_values = values
    cp.events.append((step.name, status.value, attempt, message))
    cp.errors.append(ledger.error_row(step.name, attempt, exc))
    if running is not None:
        ledger.measure(status, running.started)
    ledger.span.end()  # the attempt is over: what follows (a rollback) is the run's
    if status is StepStatus.FAILED and ledger.pipeline.asks_on_failure(step):
        await parking.ask_what_next(ledger, step, attempt, cp)
        return
    await rollback.start_rollback(ledger, code, cp, f"step {step.name!r} failed: {message}")
