"""One claimed run, driven forward (or back) by a worker until it finishes or parks."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from lockgate.core.codec import decode, encode
from lockgate.core.context import StepContext
from lockgate.core.hooks import HookPoint
from lockgate.core.pipeline import Pipeline
from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.core.step import Step
from lockgate.engine import failing, guided, parking, rollback, skipping
from lockgate.engine.calls import describe, handle_error, lease_check, run_body
from lockgate.engine.environment import Environment
from lockgate.engine.ledger import RunLedger
from lockgate.engine.logs import LogBuffer
from lockgate.engine.runcode import RunCode
from lockgate.engine.running import RunningWrite
from lockgate.errors import (
    DatabaseUnavailable,
    LeaseExpired,
    Parked,
    StaleLease,
    StepCancelled,
    StepError,
    StepInterrupted,
    StepTimeout,
)
from lockgate.observability import tracing
from lockgate.observability.tracing import StepSpan
from lockgate.records import Claimed, RunRecord
from lockgate.store.checkpoints import Checkpoint

#: How long a run that hit an engine fault waits before a worker tries it again.
ENGINE_ERROR_BACKOFF = 60.0


class RunExecution:
    """Drives one run while its worker holds the lease; every write carries the lease token."""

    def __init__(self, env: Environment, claimed: Claimed, pipeline: Pipeline) -> None:
        self.env = env
        self.pipeline = pipeline
        #: The run's durable state and its writes, shared with the helper modules.
        self.ledger = RunLedger(env, claimed, pipeline)
        #: The pipeline's hooks and step contexts, for this run.
        self.code = RunCode(self.ledger)
        self.ctx: StepContext | None = None
        #: The task driving this run (set by the worker); cancelled to stop a step body.
        self.task: asyncio.Task[None] | None = None
        #: The current step's pending RUNNING write (the worker's sweeper may flush it).
        self.running: RunningWrite | None = None
        self._in_step = False
        #: Each step's successor (the last step has none).
        self._after = dict(itertools.pairwise(s.name for s in pipeline.steps))

    # -- what the worker reads -------------------------------------------------------------

    @property
    def run(self) -> RunRecord:
        """The run as claimed."""
        return self.ledger.run

    @property
    def token(self) -> int:
        """The lease token this execution's writes are fenced with."""
        return self.ledger.token

    @property
    def logs(self) -> LogBuffer:
        """The run's buffered log lines (the worker flushes them while a step runs)."""
        return self.ledger.logs

    @property
    def cancel_requested(self) -> bool:
        """Whether the run was asked to stop."""
        return self.ledger.cancel_requested

    # -- entry -----------------------------------------------------------------------------

    async def execute(self) -> None:
        """Advance the run as far as it goes now; lose quietly to a newer lease holder."""
        try:
            await self._execute()
        except DatabaseUnavailable as exc:
            # The write may or may not have committed: only the store knows what is done.
            # Nothing more is written from memory; the run is claimed again from the store
            # (by this worker once the database is back, or by another).
            self.env.log.warning(
                "database out of reach; the run goes back to the store",
                run_id=self.ledger.run.id,
                error=str(exc),
            )
            self.env.unreachable()
        except LeaseExpired as exc:
            self.env.log.warning(
                "lease ran out; step not started", run_id=self.ledger.run.id, error=str(exc)
            )
        except StaleLease as exc:
            # Another worker holds the run now: this one's write changed nothing.
            self.env.log.warning("fenced write refused", run_id=self.ledger.run.id, error=str(exc))
            if self.env.metrics is not None:
                self.env.metrics.fenced_writes.inc()
        except Exception as exc:
            # A fault outside user code: park the run, flagged, instead of looping on it.
            self.env.log.exception("run could not advance", run_id=self.ledger.run.id)
            cp = Checkpoint(run_id=self.ledger.run.id, token=self.ledger.token)
            cp.run = {
                "flag": self.env.mask(f"engine error, retried later: {describe(exc)}"),
                "wake_at": time.time() + ENGINE_ERROR_BACKOFF,
                "lease_owner": None,
                "lease_expires_at": None,
            }
            cp.errors.append(self.ledger.error_row(None, None, exc))
            await self.env.committer.submit(cp)

    def cancel(self) -> None:
        """The run was cancelled: stop the running step; the rollback follows."""
        self.ledger.cancel_requested = True
        self.code.cancel_event.set()
        if self.ctx is not None:
            self.ctx.cancel_event.set()
        if self._in_step and self.task is not None:
            self.task.cancel()

    async def _execute(self) -> None:
        try:
            self.code.decode_params()
        except StepError as exc:
            if self.ledger.status is not RunStatus.ROLLING_BACK:
                await self._start_rollback(None, f"params refused: {exc.message}")
                return
        if self.ledger.status is RunStatus.ROLLING_BACK:
            await self._rollback()
            return
        if self.ledger.cancel_requested:
            await self._start_rollback(None, "cancelled")
            return
        if self.ledger.status is RunStatus.PENDING:
            if self.env.metrics:
                self.env.metrics.runs_started.inc()
            failure = await self.code.fire(HookPoint.RUN_STARTED)
            if failure is not None:
                await self._start_rollback(None, f"run_started hook failed: {failure}")
                return
        if self.ledger.status is not RunStatus.RUNNING:
            # A PENDING run's RUNNING event came with its first step's recorded start.
            if not (self.ledger.status is RunStatus.PENDING and self.ledger.started):
                self.ledger.carry((None, RunStatus.RUNNING, None, None))
            self.ledger.status = RunStatus.RUNNING
        await self._forward()

    # -- forward ---------------------------------------------------------------------------

    async def _forward(self) -> None:
        # JSON flows between steps; each step decodes it to its own declared input type.
        data = self.ledger.run.params
        last = self.pipeline.steps[-1].name
        for step in self.pipeline.steps:
            rec = self.ledger.steps[step.name]
            status = StepStatus(rec.status)
            if status is StepStatus.COMPLETED:
                data = rec.output
                continue
            if status is StepStatus.SKIPPED:
                continue  # skipped after a failure: the value flows on unchanged
            if status is StepStatus.WAITING and rec.error is not None:
                decided = await guided.act_on_failure(self.ledger, self.code, step, rec)
                if decided is None:
                    return  # parked still, or rolling back
                if decided == "skip":
                    continue
                status = StepStatus.FAILED  # retry: the next attempt starts below
            if self.ledger.cancel_requested:
                await self._start_rollback(None, "cancelled")
                return
            if status is StepStatus.NOT_STARTED and step.condition is not None:
                runs = await skipping.runs(self.ledger, self.code, step, rec)
                if runs is None:
                    return  # its condition failed: the run rolls back
                if not runs:
                    continue  # skipped: the value flows on unchanged
            if status is StepStatus.RUNNING and not step.idempotent:
                error = StepInterrupted(
                    f"step {step.name!r} was in flight when its worker stopped and is marked "
                    "idempotent=False, so it is not run again"
                )
                await failing.fail_step(
                    self.ledger, self.code, step, rec.attempt, error, None, rec.saved
                )
                return
            # A parked step wakes up as the same attempt; anything else starts a new one,
            # whose start is recorded before it runs (by the claim or the last checkpoint).
            recorded = step.name in self.ledger.started
            if recorded:
                attempt = self.ledger.started.pop(step.name)
            elif status is StepStatus.WAITING:
                attempt, recorded = rec.attempt, True
            else:
                attempt = rec.attempt + 1
            outcome = await self._run_step(step, attempt, data, step.name == last, recorded)
            if outcome is None:
                return  # parked for a retry, or failed and rolled back
            data = outcome[0]
        if not self.ledger.status.terminal:
            # No step left to run, and no step ended the run: the last one was skipped
            # after it failed (people decided so). The run succeeded all the same.
            await self._succeed()

    async def _succeed(self) -> None:
        self.ledger.status = RunStatus.SUCCEEDED
        await self.code.fire(HookPoint.RUN_FINISHED, status=self.ledger.status)
        cp = self.ledger.checkpoint(None)
        self.ledger.finish(cp)
        await self.ledger.commit(cp)
        self.ledger.finished()
        if self.env.metrics:
            self.env.metrics.runs_finished.labels(self.ledger.status.value).inc()

    async def _run_step(
        self, step: Step, attempt: int, data: Any, last: bool, recorded: bool
    ) -> tuple[Any] | None:
        span = self.ledger.span = self.ledger.trace.step(step.name, attempt)
        try:
            return await self._attempt(step, attempt, data, last, recorded, span)
        finally:
            span.end()
            self.ledger.span = tracing.NO_STEP_SPAN

    async def _attempt(
        self, step: Step, attempt: int, data: Any, last: bool, recorded: bool, span: StepSpan
    ) -> tuple[Any] | None:
        if self.env.lease_left(self.ledger.run.id) <= 0:
            # Held up past the lease (a stop, a freeze): another worker may have the run and
            # have run this step; its body must not run here as well.
            raise LeaseExpired(
                f"run {self.ledger.run.id}: the lease ran out before step {step.name!r} started"
            )
        ctx = self.code.context(step, attempt)
        ctx.traceparent = span.traceparent
        self.ctx = ctx
        rec = self.ledger.steps[step.name]
        # A step waking from a durable sleep keeps the time it first started.
        resumed = rec.status == StepStatus.WAITING and rec.started_at is not None
        started = rec.started_at if resumed and rec.started_at else time.time()
        running = self.running = RunningWrite(
            self.ledger, step.name, attempt, data, started, recorded
        )
        self._in_step = True
        try:
            value = decode(step.input_type, data, f"{self.ledger.where(step.name)} input")
            # Non-idempotent steps show as RUNNING before they act; so does any step whose
            # start nothing recorded yet (found in flight after a crash).
            if not step.idempotent or not recorded:
                await running.now()
            failure = await self.code.fire(HookPoint.STEP_STARTED, step=step.name)
            if failure is not None:
                raise StepError(f"step_started hook failed: {failure}")
            before = lease_check(self.ledger.run.id, self.env.lease_left, step)
            result = await run_body(step, ctx, value, before)
        except Parked as parked:
            span.outcome("parked")
            running.cancel()
            self._in_step = False
            if not step.idempotent:
                error = StepError(
                    f"step {step.name!r} called ctx.sleep but is marked idempotent=False: "
                    "its body would run again on wake-up; put the wait in a step of its own"
                )
                return await self._step_error(step, ctx, data, error, running)
            await parking.park(self.ledger, step, ctx, data, running, parked.until)
            return None
        except LeaseExpired:
            span.outcome("cancelled")
            running.cancel()
            raise  # another worker may hold the run: nothing of this attempt is written
        except asyncio.CancelledError:
            span.outcome("cancelled")
            running.cancel()
            self._in_step = False
            task = asyncio.current_task()
            # Only a user's cancel is ours to absorb; a worker shutdown propagates.
            if self.ledger.cancel_requested and task is not None and task.uncancel() == 0:
                await self._record_cancel(step, ctx, running)
                return None
            raise
        except Exception as exc:
            span.fail(exc)
            span.outcome("timed_out" if isinstance(exc, StepTimeout) else "failed")
            running.cancel()
            if self.ledger.cancel_requested:
                await self._record_cancel(step, ctx, running)
                return None
            return await self._step_error(step, ctx, data, exc, running)
        finally:
            self.ctx = None
            self.running = None
            self._in_step = False
        running.cancel()
        span.outcome("completed")
        return await self._complete(step, ctx, data, result, False, last, running)

    async def _complete(
        self,
        step: Step,
        ctx: StepContext,
        data: Any,
        result: Any,
        passthrough: bool,
        last: bool,
        running: RunningWrite,
    ) -> tuple[Any] | None:
        where = self.ledger.where(step.name)
        try:
            if step.output_type is None or passthrough:
                output = data
            else:
                output = encode(step.output_type, result, f"{where} output")
            saved = encode(None, ctx.saved, f"{where} saved data")
            if self.env.mask.active:  # secrets never reach the store, outputs included
                output, saved = self.env.mask.data(output), self.env.mask.data(saved)
        except StepError as exc:
            return await self._step_error(step, ctx, data, exc, running)
        failure = await self.code.fire(HookPoint.STEP_COMPLETED, step=step.name)
        if failure is not None:
            error = StepError(f"step_completed hook failed: {failure}")
            return await self._step_error(step, ctx, data, error, running)
        cp = self.ledger.checkpoint(step.name)
        running.close_into(cp)
        cp.events.append((step.name, StepStatus.COMPLETED, running.attempt, None))
        if not last:
            self.ledger.record_next_start(self._after[step.name], cp)
        cp.step_values = {
            "status": StepStatus.COMPLETED.value,
            "attempt": running.attempt,
            "input": data,
            "output": output,
            "saved": saved,
            "error": None,
            "started_at": running.started,
            "finished_at": time.time(),
        }
        if last:
            self.ledger.status = RunStatus.SUCCEEDED
            await self.code.fire(HookPoint.RUN_FINISHED, status=self.ledger.status)
            self.ledger.finish(cp)
        await running.settled()
        await self.ledger.commit(cp)
        if last:
            self.ledger.finished()
        self.ledger.remember(step.name, cp.step_values)
        self.ledger.measure(StepStatus.COMPLETED, running.started)
        return (output,)

    async def _step_error(
        self,
        step: Step,
        ctx: StepContext,
        data: Any,
        exc: BaseException,
        running: RunningWrite,
    ) -> tuple[Any] | None:
        if step.on_error is not None and not isinstance(exc, StepInterrupted):
            recovered = await handle_error(step, ctx, data, exc, self.ledger.logs)
            if recovered is not None:
                self.ledger.logs.add(step.name, "warning", f"error handled: {describe(exc)}")
                running.extra.append((step.name, "ERROR_HANDLED", running.attempt, describe(exc)))
                running.errors.append(self.ledger.error_row(step.name, running.attempt, exc))
                result, passthrough = recovered
                last = step.name == self.pipeline.steps[-1].name
                return await self._complete(step, ctx, data, result, passthrough, last, running)
        if step.retry.should_retry(running.attempt, exc):
            await parking.park_retry(self.ledger, step, ctx, exc, running)
            return None
        await failing.fail_step(
            self.ledger, self.code, step, running.attempt, exc, running, ctx.saved
        )
        return None

    async def _record_cancel(self, step: Step, ctx: StepContext, running: RunningWrite) -> None:
        error = StepCancelled(f"step {step.name!r} stopped: the run was cancelled")
        cancelled = (step, running.attempt, error, running, ctx.saved, StepStatus.CANCELLED)
        await failing.fail_step(self.ledger, self.code, *cancelled)

    # -- rollback (engine/rollback.py) ---------------------------------------------------

    async def _start_rollback(self, cp: Checkpoint | None, reason: str) -> None:
        await rollback.start_rollback(self.ledger, self.code, cp, reason)

    async def _rollback(self) -> None:
        await rollback.roll_back(self.ledger, self.code)
