"""Span records and where they go: a provider's span processors, or the exporter process.

A run's own spans are plain records (:data:`Record`), cheap to make on the worker's loop;
:class:`ShippingSink` ships them in batches to ``python -m lockgate.observability.exporter``,
which turns them into SDK spans (:func:`readable`) and exports them.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import marshal
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from lockgate._version import __version__

#: One finished span: (name, trace id, span id, parent span id or 0, kind, start ns, end ns,
#: status code, status description, attributes, events as (name, ns, attributes)).
Record = tuple[str, int, int, int, int, int, int, int, str | None, dict[str, Any], list[Any]]


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
KINDS = list(SpanKind)


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


def span_id(value: str | None) -> int | None:
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


def describe(exc: BaseException) -> str:
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
        kind=KINDS[kind],
        status=Status(StatusCode(code), why),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


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
    directory on the path) running :mod:`lockgate.observability.exporter` from where this
    lockgate was imported."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    start = (
        "import runpy, sys; sys.path.append(sys.argv.pop(1)); "
        "runpy.run_module('lockgate.observability.exporter', run_name='__main__', alter_sys=True)"
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
        self._log = structlog.get_logger("lockgate.observability.tracing")
        self._resource = resource
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting = threading.Lock()

    def _start(self) -> None:
        """The exporter process and the shipping thread, with the first record: an App that
        records no span (a command that only reads) starts neither."""
        with self._starting:
            if self._proc is not None or self._closed:
                return
            proc = subprocess.Popen(
                exporter_command(),
                stdin=subprocess.PIPE,
                env=exporter_environment(os.environ),
                start_new_session=True,  # a Ctrl-C to the server does not cut its last export
            )
            assert proc.stdin is not None
            self._out: IO[bytes] = proc.stdin
            write_frame(self._out, marshal.dumps(dict(self._resource.attributes)))
            self._thread = threading.Thread(target=self._loop, name="lockgate-spans", daemon=True)
            self._thread.start()
            self._proc = proc
            atexit.register(self.close)

    def add(self, record: Record) -> None:
        if self._proc is None:
            self._start()
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
        if self._proc is not None:
            self._ship(flush=True)

    def close(self) -> None:
        with self._starting:
            if self._closed:
                return
            self._closed = True
        if self._proc is None:
            return
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
