"""Parking a run: a retry's durable wait, a step's sleep or approval; no worker holds it."""

from __future__ import annotations

import time
from typing import Any

from lockgate.core.codec import encode
from lockgate.core.context import StepContext
from lockgate.core.statuses import StepStatus
from lockgate.core.step import Step
from lockgate.engine.calls import describe, when
from lockgate.engine.ledger import RunLedger
from lockgate.engine.running import RunningWrite
from lockgate.store.checkpoints import Checkpoint


async def park_retry(
    ledger: RunLedger, step: Step, ctx: StepContext, exc: BaseException, running: RunningWrite
) -> None:
    """Park the run until its next attempt is due (a durable wait: no worker holds it)."""
    attempt = running.attempt
    delay = step.retry.delay(attempt)
    message = f"{describe(exc)}; retrying in {delay:.2f}s"
    ledger.logs.add(step.name, "warning", f"attempt {attempt} failed: {message}")
    wake = time.time() + delay
    cp = ledger.checkpoint(step.name)
    running.close_into(cp)
    cp.events.append((step.name, StepStatus.RETRYING, attempt, message))
    cp.step_values = {
        "status": StepStatus.RETRYING.value,
        "attempt": attempt,
        "error": ledger.env.mask(describe(exc)),
        "saved": encode(None, ctx.saved, "saved data"),
    }
    cp.errors.append(ledger.error_row(step.name, attempt, exc))
    await running.settled()
    await ledger.release_until(cp, wake, f"retry of {step.name} at {when(wake)}")


async def park(
    ledger: RunLedger,
    step: Step,
    ctx: StepContext,
    data: Any,
    running: RunningWrite,
    until: float | None,
) -> None:
    """Park the run until ``until`` (or until woken, for ``None``): no worker holds it."""
    why = f"until {when(until)}" if until is not None else "until woken (a decision)"
    ledger.logs.add(step.name, "info", f"waiting {why}")
    cp = ledger.checkpoint(step.name)
    running.close_into(cp)
    cp.events.append((step.name, StepStatus.WAITING, running.attempt, why))
    cp.approval = ledger.asking.pop(step.name, None)
    cp.step_values = {
        "status": StepStatus.WAITING.value,
        "attempt": running.attempt,
        "input": data,
        "saved": encode(None, ctx.saved, "saved data"),
        "started_at": running.started,
        "wait_until": until,
    }
    await running.settled()
    await ledger.release_until(cp, until, f"{step.name} waits {why}")


#: What people may do with a step that failed for good (``skip`` only if it is skippable).
FAILURE_ACTIONS = ("retry", "skip", "rollback")


def failure_key(step: str, attempt: int) -> str:
    """The key a failed step's request for a decision is stored under: one per failure."""
    return f"{step}@{attempt}"


async def ask_what_next(ledger: RunLedger, step: Step, attempt: int, cp: Checkpoint) -> None:
    """Park the run after ``step`` failed for good, asking people to retry it, skip it (if
    it may be skipped) or roll back; ``cp`` already records the failure. No worker holds
    the run while it waits."""
    choices = [a for a in FAILURE_ACTIONS if a != "skip" or step.skippable]
    error = cp.step_values.get("error") or "failed"
    timeout = ledger.pipeline.decision_timeout
    expires_at = time.time() + timeout if timeout is not None else None
    on_timeout = ledger.pipeline.on_decision_timeout
    if on_timeout not in choices:
        on_timeout = "rollback"
    request = {
        "kind": "failure",
        "message": f"step {step.name!r} failed: {error}",
        "choices": choices,
        "required": 1,
        "approvers": {"roles": ["operator"], "users": []},
        "allow_self_approval": True,
        "timeout_outcome": on_timeout,
    }
    cp.approval = {
        "request": request,
        "requested_by": ledger.run.requested_by,
        "expires_at": expires_at,
    }
    cp.approval_key = failure_key(step.name, attempt)
    cp.step_values = {
        **cp.step_values,
        "status": StepStatus.WAITING.value,
        "wait_until": expires_at,
    }
    why = f"waiting for a decision: {', '.join(choices)}"
    cp.events.append((step.name, StepStatus.WAITING, attempt, why))
    ledger.logs.add(step.name, "warning", f"failed for good; {why}")
    await ledger.release_until(cp, expires_at, f"{step.name} failed; {why}")
