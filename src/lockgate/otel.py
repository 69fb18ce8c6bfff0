"""The OpenTelemetry SDK side of :mod:`lockgate.tracing`; imported only when tracing is on.

A run's own spans (the run's, its step attempts', hooks', rollbacks', waits') are made here as
plain records, not SDK span objects: they are cheap to make on the worker's loop, and their ids
are the ones stored with the run. Set up from the ``OTEL_*`` environment, the records are
shipped to an exporter process of their own (``python -m lockgate.otel_export``), which
turns them into SDK spans and exports them through the batch span processor: encoding spans
for export costs more than making them, and there it takes nothing from the workers. Given a
provider (:func:`lockgate.tracing.configure`, or a program's own), the records go to that
provider's span processors instead. Request and queue-intake spans are the SDK's own, in
process.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import marshal
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextvars import Token
from typing import IO, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from lockgate._version import __version__
from lockgate.tracing import (
    Attributes,
    RunTrace,
    StepSpan,
    Tracer,
    parse_traceparent,
    traceparent,
)

#: One finished span: (name, trace id, span id, parent span id or 0, kind, start ns, end ns,
#: status code, status description, attributes, events as (name, ns, attributes)).
Record = tuple[str, int, int, int, int, int, int, int, str | None, dict[str, Any], list[Any]]

#: Requests not worth a span: probes and scrapes.
EXCLUDED_URLS = "healthz,metrics,static/"


#: Task-run results (semantic conventions) by how a step attempt ended.
TASK_RESULTS = {
    "completed": "success",
    "failed": "failure",
    "cancelled": "cancellation",
    "timed_out": "timeout",
}
#: Pipeline-run results (semantic conventions) by the run's final status.
RUN_RESULTS = {
    "SUCCEEDED": "success",
    "FAILED": "failure",
    "ROLLED_BACK": "failure",
    "ROLLBACK_FAILED": "error",
    "CANCELLED": "cancellation",
}


SAMPLED = TraceFlags(TraceFlags.SAMPLED)
SCOPE = InstrumentationScope("lockgate", __version__)
_KINDS = list(SpanKind)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _span_id(value: str | None) -> int | None:
    """A stored span id (16 hex digits), or ``None`` if it is missing or not one."""
    if value is None or len(value) != 16:
        return None
    try:
        return int(value, 16) or None
    except ValueError:
        return None


def masked(attributes: Mapping[str, Any], mask: Callable[[str], str]) -> dict[str, Any]:
    """``attributes`` with every text value through ``mask`` (the masker of logs and events)."""
    return {k: mask(v) if isinstance(v, str) else v for k, v in attributes.items()}


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def readable(record: Record, resource: Resource) -> ReadableSpan:
    """A record as the SDK's finished span."""
    name, trace_id, span_id, parent, kind, start, end, code, why, attributes, events = record
    return ReadableSpan(
        name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=SAMPLED),
        parent=(
            SpanContext(trace_id, parent, is_remote=True, trace_flags=SAMPLED) if parent else None
        ),
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, timestamp=t) for n, t, a in events],
        kind=_KINDS[kind],
        status=Status(StatusCode(code), why),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


# -- request spans -----------------------------------------------------------------------------

#: Request span attributes that hold the path or the query, by semantic-convention version.
_PATH_KEYS = ("http.target", "url.path")
_URL_KEYS = ("http.url", "url.full")


def scrub_request(span: trace.Span, scope: Mapping[str, Any], mask: Callable[[str], str]) -> None:
    """Rewrite a request span as it starts, before anything is exported: its name, path and
    URL say the route's template (``/hooks/{trigger_id}``, ``/sign-in/link/{secret}``), not
    the path, which may carry a credential; a query keeps its keys with every value masked
    (``token=***``); every other text goes through ``mask``. A path that matches no route
    is not recorded."""
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or attributes is None:
        return
    route = attributes.get("http.route")
    template = str(route) if route else ""
    method = str(scope.get("method", "HTTP"))
    query = _masked_query(scope.get("query_string") or b"")
    span.update_name(f"{method} {template}" if template else method)
    fixed: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in _PATH_KEYS:
            fixed[key] = template + (f"?{query}" if query and key == "http.target" else "")
        elif key in _URL_KEYS:
            base, path = str(value).split("?", 1)[0], str(scope.get("path", ""))
            origin = base[: len(base) - len(path)] if path and base.endswith(path) else ""
            fixed[key] = origin + template + (f"?{query}" if query else "")
        elif key == "url.query":
            fixed[key] = query
        elif isinstance(value, str):
            fixed[key] = mask(value)
    span.set_attributes(fixed)


def _masked_query(raw: bytes) -> str:
    """A query string's keys, each value replaced with ``***``."""
    keys = [part.split(b"=", 1)[0] for part in raw.split(b"&") if part]
    return "&".join(f"{k.decode('latin-1')}=***" for k in keys)


# -- where records go ------------------------------------------------------------------------


class ProviderSink:
    """Records into a tracer provider's span processors (a program's own, or a test's)."""

    def __init__(self, provider: TracerProvider) -> None:
        # The SDK has no public way to hand a finished span to a provider's processors.
        self._processor: SpanProcessor = provider._active_span_processor
        self._resource = provider.resource

    def add(self, record: Record) -> None:
        self._processor.on_end(readable(record, self._resource))

    def flush(self) -> None:
        self._processor.force_flush()

    def close(self) -> None:
        self.flush()


#: Records are shipped at least this often (seconds), and at once past BATCH of them: a
#: worker killed outright loses at most that much of its spans.
SHIP_EVERY = 0.2
BATCH = 512
#: Records waiting past this are dropped (and counted): an exporter that cannot keep up
#: must not eat the worker's memory.
MAX_WAITING = 100_000
_FRAME = struct.Struct(">I")


def write_frame(out: IO[bytes], data: bytes) -> None:
    out.write(_FRAME.pack(len(data)) + data)
    out.flush()


def read_frame(source: IO[bytes]) -> bytes | None:
    """One frame, or ``None`` at the end of the stream."""
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = source.read(size)
    return data if len(data) == size else None


#: What the exporter process may see of its parent's environment besides ``OTEL_*``: how to
#: reach the collector (proxies, CA bundles), and nothing of lockgate's (no secrets).
_EXPORTER_NEEDS = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "TZ",
    "LANG",
    "LC_ALL",
)


def exporter_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The exporter process's environment: the ``OTEL_*`` variables and what reaching the
    collector needs; never a ``LOCKGATE_SECRET_*`` or anything else of the parent's."""
    return {k: v for k, v in env.items() if k.startswith("OTEL_") or k in _EXPORTER_NEEDS}


def exporter_command() -> list[str]:
    """``python -I`` (isolated: no ``PYTHON*`` variables, no user site, no current
    directory on the path) running :mod:`lockgate.otel_export` from where this lockgate was
    imported."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = (
        "import runpy, sys; sys.path.append(sys.argv.pop(1)); "
        "runpy.run_module('lockgate.otel_export', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-I", "-c", start, here]


class ShippingSink:
    """Records shipped in batches (``marshal``: plain values only) to an exporter process.

    The process exports through the batch span processor, and ends when its input does: a
    worker killed outright loses only the records of its last fraction of a second.
    """

    def __init__(self, resource: Resource) -> None:
        self._waiting: collections.deque[Record] = collections.deque()
        self._wake = threading.Event()
        self._shipping = threading.Lock()
        self._closed = False
        self.dropped = 0
        self._log = structlog.get_logger("lockgate.tracing")
        self._proc = subprocess.Popen(
            exporter_command(),
            stdin=subprocess.PIPE,
            env=exporter_environment(os.environ),
            start_new_session=True,  # a Ctrl-C to the server does not cut its last export
        )
        assert self._proc.stdin is not None
        self._out: IO[bytes] = self._proc.stdin
        write_frame(self._out, marshal.dumps(dict(resource.attributes)))
        self._thread = threading.Thread(target=self._loop, name="lockgate-spans", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def add(self, record: Record) -> None:
        waiting = self._waiting
        if len(waiting) >= MAX_WAITING:
            self.dropped += 1
            return
        waiting.append(record)
        if len(waiting) >= BATCH:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(SHIP_EVERY)
            self._wake.clear()
            self._ship()

    def _ship(self, flush: bool = False) -> None:
        with self._shipping:  # the shipping thread, and a flush or close from elsewhere
            waiting = self._waiting
            batch = [waiting.popleft() for _ in range(len(waiting))]
            if not batch and not flush:
                return
            try:
                write_frame(self._out, marshal.dumps(batch))
                if flush:
                    write_frame(self._out, b"")  # an empty frame: export what you hold now
            except (OSError, ValueError) as exc:
                if not self.dropped:
                    self._log.warning(
                        "spans could not be handed to the exporter process; dropped",
                        error=str(exc),
                    )
                self.dropped += len(batch)

    def flush(self) -> None:
        self._ship(flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(5)
        self._ship()
        with contextlib.suppress(OSError):
            self._out.close()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self.dropped:
            self._log.warning("spans dropped", count=self.dropped)


#: Where a run's records go.
Sink = ProviderSink | ShippingSink


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
        self._code, self._why = StatusCode.ERROR.value, mask(_describe(exc))
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
                _ns(start),
                _ns(max(end, start)),
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
                _ns(created_at),
                _ns(max(finished_at, created_at)),
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


# -- the process's tracing -------------------------------------------------------------------


class OtelTracer(Tracer):
    """Tracing on: runs' spans into ``sink`` (the provider's processors unless given),
    requests' and queue batches' through ``provider``."""

    on = True

    def __init__(self, provider: TracerProvider, sink: Sink | None = None) -> None:
        self.provider = provider
        self.sink = sink if sink is not None else ProviderSink(provider)
        self._tracer = provider.get_tracer("lockgate", __version__)

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
        mask: Callable[[str], str] | None = None,
    ) -> RunTrace:
        ids = parse_traceparent(trace_context)
        if ids is None:  # created with tracing off
            return super().run(run_id, pipeline, trace_context, trace_parent, worker)
        if not ids[2] & 1:  # not sampled where it was created: nothing is recorded, and
            return UnsampledRunTrace(trace_context or "")  # what it calls is told so
        attributes = {
            "cicd.pipeline.name": pipeline,
            "cicd.pipeline.run.id": run_id,
            "cicd.worker.id": worker,
            **(extra or {}),
        }
        parent = _span_id(trace_parent)
        return OtelRunTrace(self.sink, ids, parent, attributes, pipeline, mask or str)

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

    def instrument(self, api: Any, mask: Callable[[str], str] | None = None) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            api,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
            server_request_hook=functools.partial(scrub_request, mask=mask or str),
        )

    def close(self) -> None:
        self.sink.close()
        self.provider.force_flush()


def resource(env: Mapping[str, str]) -> Resource:
    """This process's resource: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` over
    lockgate's defaults (service ``lockgate``, its version, host and pid)."""
    attributes: dict[str, str | int] = {
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
    }
    named = "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not env.get("OTEL_SERVICE_NAME") and not named:
        attributes["service.name"] = "lockgate"
    return Resource.create(attributes)


def exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp``: OTLP over HTTP)."""
    found: list[SpanExporter] = []
    for name in (e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")):
        if name == "otlp":
            protocol = env.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
            )
            if protocol and protocol != "http/protobuf":
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: lockgate[otel] exports "
                    "OTLP over HTTP only; use http/protobuf"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())
        elif name == "console":
            found.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)"
            )
    return found


#: The provider :func:`from_environment` set up (the process's global one from then on).
OWN: TracerProvider | None = None


def from_environment(env: Mapping[str, str]) -> OtelTracer:
    """Tracing as the ``OTEL_*`` environment sets it up: requests' spans through an SDK
    provider in this process (also the global one: steps' own spans go there), runs' spans
    through the exporter process."""
    global OWN
    if OWN is None:  # the global provider can be set once a process
        OWN = TracerProvider(resource=resource(env))
        for exporter in exporters(env):
            # Batched: exported off the hot path, in a thread of the SDK's own.
            OWN.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(OWN)
    return OtelTracer(OWN, ShippingSink(OWN.resource))
