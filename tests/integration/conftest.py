"""The ``served`` fixture: the REST API on a real uvicorn at 127.0.0.1, a worker, tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from api_support import Params, Served, deploy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lockgate import App, Pipeline
from lockgate.server.asgi import create_asgi
from lockgate.testing import free_port


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider exporting into memory, every span as it ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def spans(traced: tuple[TracerProvider, InMemorySpanExporter]) -> InMemorySpanExporter:
    """The spans of the test's ``app`` (its tracer is made for them: tests/conftest.py)."""
    return traced[1]


@pytest.fixture
async def served(app: App) -> AsyncIterator[Served]:
    """The API and a worker on one loop, with a token per role."""
    app.register(Pipeline("deploy", [deploy], params=Params))
    tokens = {
        role: app.tokens.create(f"{role}-bot", role)[1]
        for role in ("viewer", "operator", "approver", "admin")
    }
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_asgi(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    worker = app.worker()
    await worker.start()
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", tokens, app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.stop()
