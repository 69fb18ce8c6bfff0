"""The pipeline's own code as one run meets it: its lifecycle hooks fired, and the context
each step attempt (or rollback) receives, made from the run's ledger."""

from __future__ import annotations

import threading
from typing import Any

from lockgate.core.codec import decode
from lockgate.core.context import StepContext, StepLogger
from lockgate.core.hooks import BLOCKING_POINTS, HookEvent, HookPoint
from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.core.step import Step
from lockgate.engine.calls import describe
from lockgate.engine.ledger import RunLedger
from lockgate.engine.stepview import SaveKeeper, StoredApprovals


class RunCode:
    """Calls into the pipeline's code for one run: hooks, and step contexts."""

    def __init__(self, ledger: RunLedger) -> None:
        self.ledger = ledger
        #: The run's params, decoded to the pipeline's params type (:meth:`decode_params`).
        self.params: Any = None
        #: Set on cancel; shared by every step context of this run.
        self.cancel_event = threading.Event()
        self._loggers: dict[str, StepLogger] = {}

    def decode_params(self) -> None:
        """Decode the run's params (:class:`StepError` if they no longer fit)."""
        led = self.ledger
        self.params = decode(led.pipeline.params_type, led.run.params, f"run {led.run.id} params")

    def logger(self, step: str) -> StepLogger:
        """The log of ``step`` (``_run`` for the run's own lines), at the step's level."""
        found = self._loggers.get(step)
        if found is None:
            steps = self.ledger.pipeline.steps
            level = next((s.log_level for s in steps if s.name == step), "debug")
            found = self._loggers[step] = self.ledger.logs.logger(step, level)
        return found

    def context(self, step: Step, attempt: int) -> StepContext:
        """The context one attempt of ``step`` (or its rollback) receives."""
        led = self.ledger
        rec = led.steps[step.name]
        return StepContext(
            run_id=led.run.id,
            pipeline=led.pipeline.name,
            step=step.name,
            attempt=max(attempt, 1),
            params=self.params,
            bag=led.bag,
            noop=led.run.noop,
            log=self.logger(step.name),
            requested_by=led.run.requested_by,
            saved=rec.saved,
            wait_until=rec.wait_until if rec.status == StepStatus.WAITING else None,
            outputs=led.outputs,
            raw_params=led.run.params,
            secrets=led.env.settings.secrets,
            settings=led.env.settings,
            approvals=StoredApprovals(led, step.name),
            keeper=SaveKeeper(led, step.name),
            # A step with a timeout gets its own event, so that its timing out does not
            # mark the whole run cancelled.
            cancel_event=self.cancel_event if step.timeout is None else threading.Event(),
        )

    async def fire(
        self,
        point: HookPoint,
        *,
        step: str | None = None,
        error: str | None = None,
        status: RunStatus | None = None,
    ) -> str | None:
        """Run the pipeline's hooks at ``point``; a blocking point's failure is returned (a
        message), any other is logged."""
        led = self.ledger
        hooks = led.pipeline.hooks.at(point)
        if not hooks:
            return None
        event = HookEvent(
            point=point,
            run_id=led.run.id,
            pipeline=led.pipeline.name,
            context=led.bag,
            noop=led.run.noop,
            log=self.logger(step or "_run"),
            step=step,
            error=error,
            status=status.value if status else None,
            requested_by=led.run.requested_by,
            raw_params=led.run.params,
            outputs=led.outputs,
            secrets=led.env.settings.secrets,
            settings=led.env.settings,
        )
        with led.trace.span(f"hook {point.value}", {"lockgate.hook.point": point.value}) as span:
            try:
                await led.pipeline.hooks.fire(event)
            except Exception as exc:
                span.fail(exc)
                message = describe(exc)
                led.logs.add(step or "_run", "error", f"{point.value} hook failed: {message}")
                if point in BLOCKING_POINTS:
                    return message
        return None
