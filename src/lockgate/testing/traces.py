"""An OTLP/HTTP trace receiver on loopback, for tests and benchmarks of tracing."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from lockgate.testing.servers import _Throwaway
from lockgate.testing.waiting import free_port


class TraceReceiver(_Throwaway):
    """An OTLP/HTTP trace receiver on loopback (``POST /v1/traces``, protobuf), in a thread:
    point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at :attr:`endpoint` and read :attr:`spans`.

    Each span is a dict: ``trace_id`` and ``span_id`` (hex), ``parent`` (hex or ``None``),
    ``name``, ``kind``, ``start`` and ``end`` (ns), ``status`` (0 unset, 1 ok, 2 error),
    ``attributes`` and ``resource`` (dicts of plain values), ``links`` (span ids, hex).
    :attr:`bodies` keeps every export request as received (protobuf bytes), for tests that
    look for text anywhere in what was exported. With ``keep=False`` it only counts spans
    (:attr:`count`). Needs ``lockgate[otel]``.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.spans: list[dict[str, object]] = []
        self.bodies: list[bytes] = []
        self.count = 0
        self.endpoint = ""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._take(request, body)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _take(self, request: Any, body: bytes) -> None:
        found: list[dict[str, object]] = []
        total = 0
        for resource_spans in request.resource_spans:
            resource = _values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                total += len(scope_spans.spans)
                if not self.keep:
                    continue
                for span in scope_spans.spans:
                    found.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "kind": span.kind,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "status": span.status.code,
                            "attributes": _values(span.attributes),
                            "resource": resource,
                            "links": [link.span_id.hex() for link in span.links],
                        }
                    )
        with self._lock:
            self.spans.extend(found)
            if self.keep:
                self.bodies.append(body)
            self.count += total


def _values(attributes: Any) -> dict[str, object]:
    """OTLP key-values as a dict of plain values."""
    out: dict[str, object] = {}
    for kv in attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out
