"""The OpenTelemetry SDK side of :mod:`.tracing`; imported only when tracing is on.

A run's own spans (the run's, its step attempts', hooks', rollbacks', waits') are made here as
plain records, not SDK span objects: they are cheap to make on the worker's loop, and their ids
are the ones stored with the run. Set up from the ``OTEL_*`` environment, the records are
shipped to an exporter process of their own (``python -m lockgate.observability.exporter``),
which turns them into SDK spans and exports them through the batch span processor: encoding
spans for export costs more than making them, and there it takes nothing from the workers.
Given a provider (``App(tracer=tracing.for_provider(provider))``, or a program's own global
one), the records go to that provider's span processors instead. Request and queue-intake
spans are the SDK's own, in process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    TraceFlags,
)

from lockgate._version import __version__
from lockgate.observability.shipping import ProviderSink, ShippingSink, Sink, span_id
from lockgate.observability.spans import OtelRunTrace, UnsampledRunTrace
from lockgate.observability.tracing import (
    Attributes,
    RunTrace,
    Tracer,
    parse_traceparent,
    traceparent,
)

#: Requests not worth a span: probes and scrapes.
EXCLUDED_URLS = "healthz,metrics,static/"

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
        parent = span_id(trace_parent)
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


#: The provider :func:`from_environment` set up: the process's global one from then on (the
#: global provider can be set once a process), shared by every App in it.
_OWN: TracerProvider | None = None
_own_lock = threading.Lock()


def from_environment(env: Mapping[str, str], asked: bool) -> OtelTracer | None:
    """Tracing for an App: into the SDK provider the embedding program set up as its global
    one, if it did; else, when ``asked`` (the ``OTEL_*`` environment asks for traces),
    requests' spans through an SDK provider in this process (made the global one, so that
    steps' own spans go there too) and runs' spans through an exporter process of the
    tracer's own, started with its first span; else ``None``."""
    global _OWN
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider) and existing is not _OWN:
        return OtelTracer(existing)  # the embedding program's
    if not asked:
        return None
    with _own_lock:
        if _OWN is None:
            _OWN = TracerProvider(resource=resource(env))
            for exporter in exporters(env):
                # Batched: exported off the hot path, in a thread of the SDK's own.
                _OWN.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(_OWN)
    return OtelTracer(_OWN, ShippingSink(_OWN.resource))
