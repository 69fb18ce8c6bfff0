"""A step's condition (its ``if:``), met or not when the run reaches it: a step whose
condition is false is SKIPPED with the reason, durably, and the value flows on unchanged."""

from __future__ import annotations

from typing import Any

from lockgate.core.conditions import holds
from lockgate.core.statuses import StepStatus
from lockgate.core.step import Step
from lockgate.engine import failing
from lockgate.engine.ledger import RunLedger
from lockgate.engine.runcode import RunCode
from lockgate.errors import StepError
from lockgate.records import StepRecord

#: What a condition calls each finished step's outcome.
OUTCOMES = {StepStatus.COMPLETED.value: "completed", StepStatus.SKIPPED.value: "skipped"}


def condition_context(ledger: RunLedger, step: Step) -> dict[str, Any]:
    """What ``step``'s condition sees: the run's params, the steps before it (their outcome
    and output), and the run."""
    steps: dict[str, dict[str, Any]] = {}
    for earlier in ledger.pipeline.steps:
        if earlier.name == step.name:
            break
        rec = ledger.steps[earlier.name]
        if rec.status in OUTCOMES:
            steps[earlier.name] = {"outcome": OUTCOMES[rec.status], "output": rec.output}
    run = ledger.run
    about = {"id": run.id, "pipeline": run.pipeline, "namespace": run.namespace}
    return {
        "params": run.params,
        "steps": steps,
        "run": {**about, "requested_by": run.requested_by},
    }


async def runs(ledger: RunLedger, code: RunCode, step: Step, rec: StepRecord) -> bool | None:
    """Whether ``step`` runs: its condition holds (or it has none). When it does not, the
    step is recorded SKIPPED with the reason (in a checkpoint of its own) before this
    returns. ``None`` when the condition cannot be evaluated: the step failed with the
    reason (and the run rolls back, or asks what next)."""
    if step.condition is None:
        return True
    try:
        if holds(step.condition, **condition_context(ledger, step)):
            return True
    except StepError as exc:
        await failing.fail_step(ledger, code, step, rec.attempt, exc, None)
        return None
    reason = f"skipped: if {step.condition} is false"
    cp = ledger.checkpoint(step.name)
    cp.step_values = {"status": StepStatus.SKIPPED.value, "output": None}
    cp.events.append((step.name, StepStatus.SKIPPED, rec.attempt, reason))
    ledger.logs.add(step.name, "info", reason)
    ledger.started.pop(step.name, None)
    await ledger.commit(cp)
    ledger.remember(step.name, cp.step_values)
    return False
