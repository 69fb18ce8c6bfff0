"""Traces: OpenTelemetry spans for runs, step attempts, hooks, rollbacks, approvals waited
on, REST requests and queue intake.

Tracing is on when the ``otel`` extra is installed and the standard ``OTEL_*`` environment
asks for an exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER``), or when the process already set an SDK tracer provider of its
own. Otherwise every call here is a cheap no-op and nothing of the SDK is imported.

Each :class:`~lockgate.App` owns its tracer (``App.tracer``, made by :func:`from_environment`
unless one is given), like its metrics, and hands it to its workers, launcher and queue
consumers: there is no process-wide tracer to set up or tear down.

A run's trace context is stored with the run: ``trace_context`` is the W3C ``traceparent``
of the run's span, ``trace_parent`` the id of that span's parent (the request or message
that started the run). Whichever worker drives the run (after a crash, on another host)
opens its spans under the stored run span, and the worker that finishes the run emits the
run span itself, with the stored ids, from the run's creation to its end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

#: Attribute values a span takes.
Attributes = Mapping[str, str | bool | int | float]

#: Environment variables that ask for traces to be exported.
ASKING = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A W3C ``traceparent`` header value."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def parse_traceparent(value: str | None) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a W3C ``traceparent``; ``None`` if it is not one."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags_hex) != 2:
        return None
    if version == "00" and len(parts) != 4:
        return None
    try:
        trace_id, span_id, flags = int(trace_hex, 16), int(span_hex, 16), int(flags_hex, 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, flags & 1


class StepSpan:
    """A span of a run (a step attempt's, a hook's...), current from its start until
    :meth:`end`; as a context manager, the block's span (an exception leaving the block
    marks it failed). This base records nothing."""

    @property
    def traceparent(self) -> str | None:
        """The ``traceparent`` a step hands on (an ``api`` step's header, a ``shell``
        step's ``TRACEPARENT``); ``None`` when tracing is off."""
        return None

    def __enter__(self) -> StepSpan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None:
            self.fail(exc)
        self.end()

    def fail(self, exc: BaseException) -> None:
        """The attempt ended in ``exc``."""

    def outcome(self, outcome: str) -> None:
        """How the attempt ended: ``completed``, ``failed``, ``parked``, ``cancelled``."""

    def end(self) -> None:
        """Close the span and stop it being current (once; later calls do nothing)."""


#: The span of an untraced run's step: it does nothing.
NO_STEP_SPAN = StepSpan()


class RunTrace:
    """One run's trace, as a worker driving it sees it; this base traces nothing."""

    on = False

    def step(self, step: str, attempt: int) -> StepSpan:
        """Open (and make current) the span of one step attempt."""
        return NO_STEP_SPAN

    def span(self, name: str, attributes: Attributes | None = None) -> StepSpan:
        """A span for a block (``with``: a hook, a rollback), under the current span if it is
        one of this run's, else under the run's."""
        return NO_STEP_SPAN

    def waited(
        self, name: str, start: float, end: float, attributes: Attributes | None = None
    ) -> None:
        """Record a wait that is over (an approval, a decision) as a span of the run."""

    def finished(self, status: str, created_at: float, finished_at: float) -> None:
        """The run ended with ``status``: emit its span."""


NO_RUN_TRACE = RunTrace()


class Tracer:
    """The process's tracing; this base is the one used when tracing is off."""

    on = False

    def new_run(self, parent: str | None = None) -> tuple[str, str | None] | None:
        """The trace context of a run being created: ``(traceparent of its span, id of its
        parent span)``. The parent is ``parent`` (a ``traceparent`` header) if it is one,
        else the current span (the request's); ``None`` when tracing is off."""
        return None

    def run(
        self,
        run_id: str,
        pipeline: str,
        trace_context: str | None,
        trace_parent: str | None,
        worker: str,
        extra: Attributes | None = None,
        mask: Callable[[str], str] | None = None,
    ) -> RunTrace:
        """A run's trace on the worker driving it; ``mask`` hides secrets in the errors
        its spans record."""
        return NO_RUN_TRACE

    @contextlib.contextmanager
    def intake(
        self,
        name: str,
        attributes: Attributes,
        links: list[str] | None = None,
    ) -> Iterator[None]:
        """A CONSUMER span for the block (a batch of queue messages), linked to the
        messages' own ``traceparent`` values; runs created inside are its children."""
        yield

    def instrument(self, api: Any, mask: Callable[[str], str] | None = None) -> None:
        """Add a server span for every request of a FastAPI application; its name and
        attributes say the route's template, never a path or query value (which may carry a
        credential), and ``mask`` hides secrets in the rest."""

    def close(self) -> None:
        """Flush, and stop: for the end of the process or of a test."""


OFF = Tracer()


def for_provider(provider: TracerProvider) -> Tracer:
    """Tracing into ``provider``'s span processors: for tests, and for programs that set up
    OpenTelemetry themselves and embed lockgate (``App(tracer=for_provider(provider))``)."""
    from lockgate.observability.otel import OtelTracer

    return OtelTracer(provider)


def from_environment(env: Mapping[str, str]) -> Tracer:
    """An App's tracing as the process sets it up: off (:data:`OFF`, nothing of the SDK
    imported) unless the ``OTEL_*`` variables in ``env`` ask for traces or the program has
    set an SDK tracer provider of its own (its global one)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return OFF
    asked = any(env.get(name, "").strip() for name in ASKING)
    if env.get("OTEL_TRACES_EXPORTER", "").strip() == "none":
        asked = False
    # Loaded already: the program may have set a provider of its own; not loaded and not
    # asked for, tracing stays off without importing it.
    if not asked and "opentelemetry.sdk.trace" not in sys.modules:
        return OFF
    try:
        from lockgate.observability import otel
    except ImportError:
        structlog.get_logger("lockgate.tracing").warning(
            "OTEL_* asks for traces, but the otel extra is not installed: "
            "pip install 'lockgate[otel]'"
        )
        return OFF
    return otel.from_environment(env, asked) or OFF


__all__ = [
    "NO_RUN_TRACE",
    "NO_STEP_SPAN",
    "OFF",
    "RunTrace",
    "StepSpan",
    "Tracer",
    "for_provider",
    "from_environment",
    "parse_traceparent",
    "traceparent",
]
