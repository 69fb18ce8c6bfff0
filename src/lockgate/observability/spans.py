"""A run's spans as records: the run's, its step attempts', hooks', rollbacks' and waits'."""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
)

from lockgate.observability.shipping import (
    RUN_RESULTS,
    SAMPLED,
    TASK_RESULTS,
    Sink,
    describe,
    masked,
    ns,
)
from lockgate.observability.tracing import (
    Attributes,
    RunTrace,
    StepSpan,
    traceparent,
)

# -- a run's spans ---------------------------------------------------------------------------


class LightSpan(StepSpan):
    """A span of a run, made as a record when it ends; current (for the code it wraps, and
    what that code calls) from its start until then."""

    def __init__(
        self, run: OtelRunTrace, name: str, parent: int, attributes: dict[str, Any]
    ) -> None:
        self._run = run
        self.name = name
        self.span_id = random.getrandbits(64) or 1
        self._parent = parent
        self._attributes = attributes
        self._events: list[Any] = []
        self._code: int = 0
        self._why: str | None = None
        self._start = time.time_ns()
        context = SpanContext(run.trace_id, self.span_id, is_remote=False, trace_flags=SAMPLED)
        self._token: Token[Context] | None = otel_context.attach(
            trace.set_span_in_context(NonRecordingSpan(context))
        )

    @property
    def traceparent(self) -> str:
        return traceparent(self._run.trace_id, self.span_id, 1)

    def fail(self, exc: BaseException) -> None:
        mask = self._run.mask
        self._code, self._why = StatusCode.ERROR.value, mask(describe(exc))
        event = {
            "exception.type": f"{exc.__class__.__module__}.{exc.__class__.__qualname__}",
            "exception.message": mask(str(exc)),
            "exception.stacktrace": mask("".join(traceback.format_exception(exc))),
        }
        self._events.append(("exception", time.time_ns(), event))

    def outcome(self, outcome: str) -> None:
        self._attributes["lockgate.step.outcome"] = outcome
        result = TASK_RESULTS.get(outcome)
        if result is not None:
            self._attributes["cicd.pipeline.task.run.result"] = result

    def end(self) -> None:
        if self._token is None:
            return
        otel_context.detach(self._token)
        self._token = None
        self._run.sink.add(
            (
                self.name,
                self._run.trace_id,
                self.span_id,
                self._parent,
                0,
                self._start,
                time.time_ns(),
                self._code,
                self._why,
                self._attributes,
                self._events,
            )
        )


class OtelRunTrace(RunTrace):
    """One run's spans, under the run span whose ids were stored at its creation."""

    on = True

    def __init__(
        self,
        sink: Sink,
        ids: tuple[int, int, int],
        parent: int | None,
        attributes: dict[str, Any],
        name: str,
        mask: Callable[[str], str],
    ) -> None:
        self.sink = sink
        self.trace_id, self.span_id, _ = ids
        self._parent = parent
        #: The run span's attributes; the others carry only the run's id (kept small:
        #: every attribute costs, on the loop and again in the export).
        self._run_attributes = masked(attributes, mask)
        self._run_id = attributes["cicd.pipeline.run.id"]
        self._name = mask(name)
        self.mask = mask

    def _current(self) -> int:
        """The current span if it is one of this run's (a step's), else the run span."""
        current = trace.get_current_span().get_span_context()
        return current.span_id if current.trace_id == self.trace_id else self.span_id

    def step(self, step: str, attempt: int) -> StepSpan:
        step = self.mask(step)
        attributes = {
            "cicd.pipeline.run.id": self._run_id,
            "cicd.pipeline.task.name": step,
            "lockgate.step.attempt": attempt,
        }
        return LightSpan(self, step, self.span_id, attributes)

    def span(self, name: str, attributes: Attributes | None = None) -> StepSpan:
        attributes = {"cicd.pipeline.run.id": self._run_id, **masked(attributes or {}, self.mask)}
        return LightSpan(self, self.mask(name), self._current(), attributes)

    def waited(
        self, name: str, start: float, end: float, attributes: Attributes | None = None
    ) -> None:
        self.sink.add(
            (
                self.mask(name),
                self.trace_id,
                random.getrandbits(64) or 1,
                self.span_id,
                0,
                ns(start),
                ns(max(end, start)),
                0,
                None,
                {"cicd.pipeline.run.id": self._run_id, **masked(attributes or {}, self.mask)},
                [],
            )
        )

    def finished(self, status: str, created_at: float, finished_at: float) -> None:
        failed = status != "SUCCEEDED"
        self.sink.add(
            (
                f"RUN {self._name}",
                self.trace_id,
                self.span_id,
                self._parent or 0,
                SpanKind.SERVER.value,
                ns(created_at),
                ns(max(finished_at, created_at)),
                StatusCode.ERROR.value if failed else 0,
                f"run ended {status}" if failed else None,
                {
                    **self._run_attributes,
                    "cicd.pipeline.action.name": "RUN",
                    "cicd.pipeline.result": RUN_RESULTS.get(status, "error"),
                    "lockgate.run.status": status,
                },
                [],
            )
        )


class Unsampled(StepSpan):
    """A span of a run that is not sampled: it records nothing, and hands on the run's
    context with the not-sampled flag, so that the systems it calls do not sample either."""

    def __init__(self, value: str) -> None:
        self._value = value

    @property
    def traceparent(self) -> str:
        return self._value


class UnsampledRunTrace(RunTrace):
    """A run that is not sampled: its steps hand on its context, flagged not sampled."""

    def __init__(self, trace_context: str) -> None:
        self._span = Unsampled(trace_context)

    def step(self, step: str, attempt: int) -> StepSpan:
        return self._span
