"""A run's ledger: its durable state as the worker holding its lease knows it, and the
fenced writes that change it. The driver (:mod:`lockgate.engine.execution`) and its helpers
(rollback, parking, guided failure, the RUNNING write, what a step sees) share one ledger
per run; none of them reaches into another's state.

**What is checkpointed.** A :class:`~lockgate.store.checkpoints.Checkpoint` is one
transaction: the run row's status, context bag and current step (at the end also its
finish time, and the lease given up; when it parks, when it wakes); one step's columns
(status, attempt, input, output, saved data, error, times); event rows; error rows; and the
step log lines buffered since the last write. A completed step's output commits with its
COMPLETED event, before the next step starts.

**What an event row is.** ``(step, status, attempt, message)``: ``step`` is ``None`` for
the run itself. Events are only appended; a step's or run's state is its latest event.
Events with no write of their own wait in the ledger (:meth:`RunLedger.carry`) and go out
with the next checkpoint.

**How a write is fenced.** Every checkpoint carries the lease token the run was claimed
with; the store applies it only while that token is still the run's, else it raises
:class:`~lockgate.errors.StaleLease` and writes nothing (another worker holds the run).
Secrets are masked in one place, :meth:`RunLedger.submit`, before anything is written.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from lockgate.core.context import StepOutputs
from lockgate.core.pipeline import Pipeline
from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.engine.calls import EventRow, Row, describe
from lockgate.engine.environment import Environment
from lockgate.engine.logs import LogBudget, LogBuffer
from lockgate.observability import tracing
from lockgate.observability.tracing import StepSpan
from lockgate.records import Claimed, StepRecord
from lockgate.store.attempts import started_on
from lockgate.store.checkpoints import Checkpoint


class RunLedger:
    """One run's durable state and its writes, while this worker holds the run's lease."""

    def __init__(self, env: Environment, claimed: Claimed, pipeline: Pipeline) -> None:
        self.env = env
        #: The run as claimed (its params, who asked, its trace context...).
        self.run = claimed.run
        #: The lease token every write is fenced with.
        self.token = claimed.run.lease_token
        self.pipeline = pipeline
        #: The steps with a condition (their start is not recorded ahead).
        self._conditional = {s.name for s in pipeline.steps if s.condition is not None}
        #: Each step as stored, kept current by :meth:`remember` after each write.
        self.steps: dict[str, StepRecord] = {s.name: s for s in claimed.steps}
        types = {s.name: s.output_type for s in pipeline.steps}
        #: The completed steps' outputs, typed as their steps declare.
        self.outputs = StepOutputs(Outputs(self.steps), types)
        #: The run's context bag (``ctx.bag``), written with every checkpoint.
        self.bag: dict[str, Any] = dict(claimed.run.context or {})
        #: The run's status as this worker last wrote (or claimed) it.
        self.status = RunStatus(claimed.run.status)
        settings = env.settings
        budget = LogBudget(settings.log_max_lines, settings.log_max_bytes)
        #: Step log lines waiting for the next write (or the worker's flush).
        self.logs = LogBuffer(self.run.id, env.mask, settings.log_dir, budget)
        self.cancel_requested = claimed.run.cancel_requested
        #: The error that made the run roll back, for rollbacks and ``rolling_back`` hooks.
        self.cause: BaseException | None = None
        #: Approval requests to store with the checkpoint that parks their step.
        self.asking: dict[str, dict[str, Any]] = {}
        #: Steps whose next attempt's start is already recorded, with its number.
        self.started: dict[str, int] = dict([claimed.started]) if claimed.started else {}
        #: The run's trace (spans under the run span stored at its creation).
        self.trace = env.tracer.run(
            self.run.id,
            pipeline.name,
            self.run.trace_context,
            self.run.trace_parent,
            env.worker_id,
            {"lockgate.namespace": self.run.namespace, "lockgate.version": self.run.version},
            env.mask,
        )
        #: The span of the step attempt in progress.
        self.span: StepSpan = tracing.NO_STEP_SPAN
        self._carry: list[EventRow] = []

    # -- writes ----------------------------------------------------------------------------

    def record_next_start(self, following: str, cp: Checkpoint) -> None:
        """Record step ``following``'s start with ``cp`` (the checkpoint of the step before
        it): if the worker dies before the next one commits, recovery knows that attempt
        started (and counts a new one)."""
        rec = self.steps[following]
        if rec.status not in (StepStatus.NOT_STARTED, StepStatus.RETRYING):
            return
        if following in self._conditional:
            return  # it may not run: its condition decides when the run reaches it
        attempt = rec.attempt + 1
        cp.events.append((following, StepStatus.RUNNING, attempt, started_on(self.env.worker_id)))
        self.started[following] = attempt

    def carry(self, event: EventRow) -> None:
        """An event that goes out with the next checkpoint (it has no write of its own)."""
        self._carry.append(event)

    def checkpoint(self, step: str | None) -> Checkpoint:
        """A new write of the run (and of ``step``, if given): the run's status, bag and
        current step, and the events carried so far."""
        cp = Checkpoint(run_id=self.run.id, token=self.token, step=step)
        cp.events.extend(self._carry)
        self._carry = []
        cp.run = {"status": self.status.value, "context": self.bag, "current_step": step}
        return cp

    def submit(self, cp: Checkpoint) -> asyncio.Future[Any]:
        """Queue ``cp`` with the log lines buffered so far, masked; the future resolves when
        it commits (or raises :class:`StaleLease`)."""
        cp.logs = self.logs.take()
        mask = self.env.mask
        if mask.active:  # one place where every text bound for the store is masked
            cp.events = [(st, status, a, m and mask(m)) for st, status, a, m in cp.events]
            for values in (cp.run, cp.step_values):
                if values.get("error"):
                    values["error"] = mask(values["error"])
            if cp.run.get("context"):  # viewers read the bag: masked like the logs
                cp.run["context"] = mask.data(cp.run["context"])
        return self.env.committer.submit(cp)

    async def commit(self, cp: Checkpoint) -> None:
        """Write ``cp`` and wait until it committed."""
        await self.submit(cp)

    def remember(self, step: str, values: Mapping[str, Any]) -> None:
        """What a committed write changed of ``step``, kept in memory."""
        self.steps[step] = replace(self.steps[step], **values)

    def finish(self, cp: Checkpoint) -> None:
        """Make ``cp`` the run's last write: its final status (the ledger's), the time, and
        the lease given up."""
        cp.events.append((None, self.status, None, None))
        cp.run.update(
            status=self.status.value,
            finished_at=time.time(),
            wake_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )

    def finished(self) -> None:
        """The run's end is committed: the last attempt's span closes, the run's goes out."""
        self.span.end()
        self.trace.finished(self.status.value, self.run.created_at, time.time())

    async def release_until(self, cp: Checkpoint, until: float | None, why: str) -> None:
        """Commit ``cp`` with the run WAITING until ``until`` (``None``: until woken) and
        its lease given up: no worker holds it while it waits."""
        self.status = RunStatus.WAITING
        cp.events.append((None, RunStatus.WAITING, None, why))
        cp.run.update(
            status=RunStatus.WAITING.value, wake_at=until, lease_owner=None, lease_expires_at=None
        )
        await self.commit(cp)
        if cp.step is not None:
            self.remember(cp.step, cp.step_values)
        if until is not None:
            self.env.wake_at(until)

    # -- what writes carry -----------------------------------------------------------------

    def error_row(self, step: str | None, attempt: int | None, exc: BaseException) -> Row:
        """An error row: the exception's kind, message and traceback, masked."""
        return {
            "step": step,
            "attempt": attempt,
            "kind": f"{exc.__class__.__module__}.{exc.__class__.__qualname__}",
            "message": self.env.mask(describe(exc)),
            "traceback": self.env.mask("".join(traceback.format_exception(exc))),
        }

    def where(self, step: str) -> str:
        """How errors name a step of this run."""
        return f"run {self.run.id} step {step!r}"

    def measure(self, step_status: StepStatus, started: float) -> None:
        """Count a step attempt's end (and the run's, once it is over) in the metrics."""
        metrics = self.env.metrics
        if metrics is None:
            return
        metrics.step_duration.labels(step_status.value).observe(time.time() - started)
        if self.status.terminal:
            metrics.runs_finished.labels(self.status.value).inc()


class Outputs(Mapping[str, Any]):
    """A live, read-only view of the completed steps' outputs, as stored (JSON)."""

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
