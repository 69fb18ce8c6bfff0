"""The OpenTelemetry SDK side of :mod:`lockgate.tracing`; imported only when tracing is on."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from lockgate._version import __version__
from lockgate.tracing import (
    EXCLUDED_URLS,
    FIXED_IDS,
    RUN_RESULTS,
    TASK_RESULTS,
    Attributes,
    RunTrace,
    StepSpan,
    Tracer,
    parse_traceparent,
    traceparent,
)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _remote(trace_id: int, span_id: int, flags: int) -> Context:
    span = NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    )
    return trace.set_span_in_context(span, Context())


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


class _RunIds(IdGenerator):
    """Random ids, except for a run's span: it gets the ids stored at the run's creation."""

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        fixed = FIXED_IDS.get()
        return fixed[1] if fixed is not None else self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        fixed = FIXED_IDS.get()
        return fixed[0] if fixed is not None else self.inner.generate_trace_id()


class OtelSpan(StepSpan):
    """A recording span; current from its start until :meth:`end` when ``token`` is set."""

    def __init__(self, span: Span, token: Token[Context] | None = None) -> None:
        self.span = span
        #: Set while the span is current and open (a step's); ``end`` closes it once.
        self.token = token
        ctx = span.get_span_context()
        self.traceparent = traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))

    def fail(self, exc: BaseException) -> None:
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, _describe(exc)))

    def outcome(self, outcome: str) -> None:
        result = TASK_RESULTS.get(outcome)
        if result is None:
            self.span.set_attribute("lockgate.step.outcome", outcome)
        else:
            self.span.set_attributes(
                {"lockgate.step.outcome": outcome, "cicd.pipeline.task.run.result": result}
            )

    def end(self) -> None:
        if self.token is not None:
            otel_context.detach(self.token)
            self.token = None
            self.span.end()


class OtelRunTrace(RunTrace):
    """One run's spans, under the run span whose ids were stored at its creation."""

    on = True

    def __init__(
        self,
        tracer: trace.Tracer,
        ids: tuple[int, int, int],
        parent: int | None,
        base: dict[str, Any],
        name: str,
    ) -> None:
        self._tracer = tracer
        self.trace_id, self.span_id, self.flags = ids
        self._parent = parent
        #: The run span's attributes; the others carry only the run's id (kept small:
        #: every attribute costs on the hot path and again in the export).
        self._run_attributes = base
        self._run_id = base["cicd.pipeline.run.id"]
        self._base = {"cicd.pipeline.run.id": self._run_id}
        self._name = name
        self._under_run = _remote(*ids)

    def _context(self) -> Context | None:
        """The current span's context if it is of this run (a step's), else the run's."""
        current = trace.get_current_span().get_span_context()
        return None if current.trace_id == self.trace_id else self._under_run

    def step(self, step: str, attempt: int) -> StepSpan:
        span = self._tracer.start_span(
            step,
            context=self._under_run,
            attributes={
                "cicd.pipeline.run.id": self._run_id,
                "cicd.pipeline.task.name": step,
                "lockgate.step.attempt": attempt,
            },
        )
        return OtelSpan(span, otel_context.attach(trace.set_span_in_context(span)))

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[StepSpan]:
        attributes = {**self._base, **attributes} if attributes else self._base
        span = self._tracer.start_span(name, context=self._context(), attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        handle = OtelSpan(span)
        try:
            yield handle
        except BaseException as exc:
            handle.fail(exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def waited(
        self, name: str, start: float, end: float, attributes: Attributes | None = None
    ) -> None:
        span = self._tracer.start_span(
            name,
            context=self._under_run,
            attributes={**self._base, **(attributes or {})},
            start_time=_ns(start),
        )
        span.end(end_time=_ns(max(end, start)))

    def finished(self, status: str, created_at: float, finished_at: float) -> None:
        if not self.flags & 1:
            return  # not sampled where it was created: nothing of it is recorded
        if self._parent is not None:
            context = _remote(self.trace_id, self._parent, self.flags)
        else:
            context = Context()  # a trace of its own: the run span is its root
        token = FIXED_IDS.set((self.trace_id, self.span_id))
        try:
            span = self._tracer.start_span(
                f"RUN {self._name}",
                context=context,
                kind=SpanKind.SERVER,
                attributes={
                    **self._run_attributes,
                    "cicd.pipeline.action.name": "RUN",
                    "cicd.pipeline.result": RUN_RESULTS.get(status, "error"),
                    "lockgate.run.status": status,
                },
                start_time=_ns(created_at),
            )
        finally:
            FIXED_IDS.reset(token)
        if status != "SUCCEEDED":
            span.set_status(Status(StatusCode.ERROR, f"run ended {status}"))
        span.end(end_time=_ns(max(finished_at, created_at)))


class OtelTracer(Tracer):
    """Tracing into an SDK tracer provider."""

    on = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("lockgate", __version__)
        ids = getattr(self._tracer, "id_generator", None)
        if isinstance(ids, IdGenerator) and not isinstance(ids, _RunIds):
            self._tracer.id_generator = _RunIds(ids)  # type: ignore[attr-defined]

    def new_run(self, parent: str | None = None) -> tuple[str, str | None] | None:
        parsed = parse_traceparent(parent)
        if parsed is None:
            current = trace.get_current_span().get_span_context()
            if current.is_valid:
                parsed = (current.trace_id, current.span_id, int(current.trace_flags) & 1)
        span_id = random.getrandbits(64) or 1
        if parsed is not None:
            trace_id, parent_id, flags = parsed
            return traceparent(trace_id, span_id, flags), f"{parent_id:016x}"
        trace_id = random.getrandbits(128) or 1
        decision = self.provider.sampler.should_sample(None, trace_id, "RUN").decision
        sampled = decision is Decision.RECORD_AND_SAMPLE
        return traceparent(trace_id, span_id, int(sampled)), None

    def run(
        self,
        run_id: str,
        pipeline: str,
        trace_context: str | None,
        trace_parent: str | None,
        worker: str,
        extra: Attributes | None = None,
    ) -> RunTrace:
        ids = parse_traceparent(trace_context)
        if ids is None:
            return super().run(run_id, pipeline, trace_context, trace_parent, worker, extra)
        parent = int(trace_parent, 16) if trace_parent else None
        base = {
            "cicd.pipeline.name": pipeline,
            "cicd.pipeline.run.id": run_id,
            "cicd.worker.id": worker,
            **(extra or {}),
        }
        return OtelRunTrace(self._tracer, ids, parent, base, pipeline)

    @contextlib.contextmanager
    def intake(
        self,
        name: str,
        attributes: Attributes,
        links: list[str] | None = None,
    ) -> Iterator[None]:
        linked = []
        for value in links or ():
            parsed = parse_traceparent(value)
            if parsed is not None:
                context = SpanContext(
                    parsed[0], parsed[1], is_remote=True, trace_flags=TraceFlags(parsed[2])
                )
                linked.append(Link(context))
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CONSUMER, attributes=attributes, links=linked
        ):
            yield

    def current(self) -> str | None:
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))

    def instrument(self, api: Any) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            api,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
        )

    def flush(self) -> None:
        self.provider.force_flush()
