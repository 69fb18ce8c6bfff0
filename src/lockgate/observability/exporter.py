"""The exporter process of a traced lockgate process
(``python -m lockgate.observability.exporter``).

It reads its parent's span records from standard input (:mod:`.shipping` frames: first the
parent's resource, then batches of records; an empty frame asks for a flush), exports
them through the SDK's batch span processor with the exporters the ``OTEL_*`` environment
names, and ends, after a last export, when its input ends: when the parent closes it, exits
or is killed.
"""

from __future__ import annotations

import marshal
import os
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from lockgate.observability.otel import exporters
from lockgate.observability.shipping import read_frame, readable

#: The batch span processor's queue, in spans.
QUEUE = 65_536


def main() -> int:
    # Telemetry yields the CPU to the deployments it describes: under load, spans wait here
    # (then in the parent, up to its limit) rather than slow the worker down.
    os.nice(10)
    source = sys.stdin.buffer
    head = read_frame(source)
    if head is None:
        return 0
    # marshal: plain values only, from the parent over its own pipe (nobody else writes it).
    resource = Resource(marshal.loads(head))  # noqa: S302
    # Batches come in bursts: the queue holds many of them (more if OTEL_BSP_MAX_QUEUE_SIZE
    # says so) before spans are dropped.
    queue = max(QUEUE, int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 0))
    processors: list[SpanProcessor] = [
        BatchSpanProcessor(e, max_queue_size=queue) for e in exporters(os.environ)
    ]
    try:
        while (frame := read_frame(source)) is not None:
            if not frame:
                for processor in processors:
                    processor.force_flush()
                continue
            for record in marshal.loads(frame):  # noqa: S302
                span = readable(record, resource)
                for processor in processors:
                    processor.on_end(span)
    finally:
        for processor in processors:
            processor.shutdown()  # exports what is left
    return 0


if __name__ == "__main__":
    sys.exit(main())
