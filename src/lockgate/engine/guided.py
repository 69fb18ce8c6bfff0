"""Guided failure: a step that failed for good waits for people to retry it, skip it or roll
the run back; when the run wakes, this acts on what they decided."""

from __future__ import annotations

import asyncio
import time

from lockgate.core.statuses import StepStatus
from lockgate.core.step import Step
from lockgate.engine import parking, rollback, stepview
from lockgate.engine.ledger import RunLedger
from lockgate.engine.runcode import RunCode
from lockgate.errors import StepError
from lockgate.records import StepRecord
from lockgate.store.approvals import ExpireApproval


async def act_on_failure(
    ledger: RunLedger, code: RunCode, step: Step, rec: StepRecord
) -> str | None:
    """``"retry"`` (run the step again: a new attempt) or ``"skip"`` (go on without it;
    recorded here), or ``None`` when the run parked again (nothing decided yet) or rolls
    back (decided so)."""
    key = parking.failure_key(step.name, rec.attempt)
    request = await asyncio.to_thread(ledger.env.store.get_approval, ledger.run.id, key)
    outcome = request.outcome if request is not None else None
    if request is not None and outcome is None:
        expires = request.expires_at
        if expires is None or time.time() < expires:  # woken early (a restart): wait on
            cp = ledger.checkpoint(step.name)
            await ledger.release_until(cp, expires, f"{step.name} failed; still waiting")
            return None
        timed_out = str(request.request.get("timeout_outcome") or "rollback")
        request = await ledger.env.committer.apply(ExpireApproval(ledger.run.id, key, timed_out))
        outcome = request.outcome  # the timeout's, unless a decision came first
    if request is not None:
        stepview.waited(ledger, f"decision {step.name}", request)
    who = request.settled_by if request is not None else "lockgate"
    if outcome is None:  # no request stored (a run from before guided failure): roll back
        outcome = "rollback"
    if outcome == "rollback":
        ledger.cause = StepError(rec.error or f"step {step.name!r} failed")
        cp = ledger.checkpoint(step.name)
        cp.step_values = {"status": StepStatus.FAILED.value}
        cp.events.append((step.name, StepStatus.FAILED, rec.attempt, f"roll back, by {who}"))
        await rollback.start_rollback(ledger, code, cp, f"step {step.name!r} failed: {rec.error}")
        return None
    if outcome == "skip":
        cp = ledger.checkpoint(step.name)
        cp.step_values = {"status": StepStatus.SKIPPED.value, "output": None}
        cp.events.append((step.name, StepStatus.SKIPPED, rec.attempt, f"skipped, by {who}"))
        ledger.logs.add(step.name, "warning", f"skipped after it failed, by {who}")
        await ledger.commit(cp)
        ledger.remember(step.name, cp.step_values)
        return "skip"
    ledger.logs.add(step.name, "info", f"retried after it failed, by {who}")
    return "retry"
