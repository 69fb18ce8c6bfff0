"""OpenTelemetry traces, read with the SDK's in-memory exporter: a run's span and its step
attempts, hooks, rollbacks and approvals in one trace; a ``traceparent`` on a request or a
message as the run's ancestor; ``api`` and ``shell`` steps handing the context on."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api_support import Served
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode
from queue_support import PARAMS, register, wait_for

from lockgate import App, Pipeline, Retry, RunStatus, Settings, StepContext, step
from lockgate.console.core import COOKIE
from lockgate.engine.worker import Worker
from lockgate.observability import tracing
from lockgate.specs import load_file
from lockgate.testing import RedisServer, free_port

#: A caller's trace context, as a client sends it.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with ``api`` steps allowed to call 127.0.0.1."""
    return settings.with_(api_allow=("127.0.0.1/32",))


def of_run(exporter: InMemorySpanExporter, run_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("cicd.pipeline.run.id") == run_id
    ]


def named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def hexid(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def parent_of(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


async def finish(app: App, worker: Worker, name: str, params: Any = None) -> str:
    record = await asyncio.to_thread(app.start_run, name, params)
    worker.wake()
    done = await app.wait(record.id, timeout=20)
    return done.id


async def test_a_run_and_its_attempts_hooks_and_shell_step_share_one_trace(
    app: App, worker: Worker, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    calls = {"flaky": 0}

    @step(retry=Retry(attempts=2, backoff=0.01))
    def flaky(ctx: StepContext) -> None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("first attempt fails")

    path = tmp_path / "traced.yaml"
    path.write_text(
        """
name: traced
steps:
  - name: show
    kind: shell
    argv: [sh, -c, 'echo "$TRACEPARENT"']
"""
    )
    shell = load_file(path)
    started: list[str] = []
    pipeline = Pipeline("traced", [flaky, *shell.steps])
    pipeline.hooks.add("run_started", lambda event: started.append(event.run_id))
    app.register(pipeline)
    run_id = await finish(app, worker, "traced")
    assert app.get_run(run_id).run.status == RunStatus.SUCCEEDED

    found = of_run(spans, run_id)
    [root] = named(found, "RUN traced")
    trace_id, root_id = hexid(root)
    stored = app.get_run(run_id).run
    assert stored.trace_context == f"00-{trace_id}-{root_id}-01"
    assert stored.trace_parent is None and root.parent is None  # a trace of its own
    assert {hexid(s)[0] for s in found} == {trace_id}
    attrs = root.attributes or {}
    assert attrs["cicd.pipeline.name"] == "traced"
    assert attrs["cicd.pipeline.result"] == "success"
    assert root.start_time == int(stored.created_at * 1e9)

    first, second = sorted(named(found, "flaky"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {})["lockgate.step.attempt"] for s in (first, second)] == [1, 2]
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert (first.attributes or {})["cicd.pipeline.task.run.result"] == "failure"
    assert (second.attributes or {})["cicd.pipeline.task.run.result"] == "success"
    assert {parent_of(first), parent_of(second)} == {root_id}

    [hook] = named(found, "hook run_started")
    assert parent_of(hook) == root_id and started == [run_id]

    [show] = named(found, "show")
    echoed = app.get_run(run_id).steps[1].output["stdout"]
    assert echoed == "00-{}-{}-01".format(*hexid(show))  # the shell got its span's context


async def test_a_rollback_and_its_steps_are_spans_and_the_run_span_is_an_error(
    app: App, worker: Worker, spans: InMemorySpanExporter
) -> None:
    @step
    def create(ctx: StepContext) -> None:
        pass

    handed: list[str | None] = []

    @create.rollback
    def remove(ctx: StepContext) -> None:
        handed.append(ctx.traceparent)

    @step
    def broken(ctx: StepContext) -> None:
        raise RuntimeError("it broke")

    app.register(Pipeline("undone", [create, broken]))
    run_id = await finish(app, worker, "undone")
    assert app.get_run(run_id).run.status == RunStatus.ROLLED_BACK

    found = of_run(spans, run_id)
    [root] = named(found, "RUN undone")
    [rollback] = named(found, "rollback")
    [undo] = named(found, "rollback create")
    _, root_id = hexid(root)
    assert parent_of(rollback) == root_id
    assert parent_of(undo) == hexid(rollback)[1]
    assert handed == ["00-{}-{}-01".format(*hexid(undo))]  # the rollback can hand it on
    assert "it broke" in str((rollback.attributes or {})["lockgate.rollback.cause"])
    assert root.status.status_code is StatusCode.ERROR
    assert (root.attributes or {})["cicd.pipeline.result"] == "failure"
    assert (root.attributes or {})["lockgate.run.status"] == "ROLLED_BACK"
    [failed] = named(found, "broken")
    assert failed.status.status_code is StatusCode.ERROR


async def test_an_approval_waited_on_is_a_span_from_its_request_to_its_decision(
    app: App, worker: Worker, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    path = tmp_path / "gated.yaml"
    path.write_text(
        """
name: gated
steps:
  - name: gate
    kind: approval
    message: ship it?
"""
    )
    app.register(load_file(path))
    record = await asyncio.to_thread(app.acting("dev").start_run, "gated", None)
    worker.wake()
    await wait_for(lambda: app.get_run(record.id).run.status == "WAITING")
    await asyncio.to_thread(app.acting("boss").decide, record.id, "approve")
    worker.wake()
    done = await app.wait(record.id, timeout=20)
    assert done.status == RunStatus.SUCCEEDED

    found = of_run(spans, record.id)
    [root] = named(found, "RUN gated")
    [waited] = named(found, "approval gate")
    approval = app.get_run(record.id)
    assert parent_of(waited) == hexid(root)[1]
    attrs = waited.attributes or {}
    assert attrs["lockgate.approval.outcome"] == "approved"
    assert attrs["lockgate.approval.settled_by"] == "boss"
    assert waited.end_time is not None and waited.start_time is not None
    assert waited.end_time > waited.start_time
    gate_spans = named(found, "gate")  # parked once, then woken to finish
    assert [(s.attributes or {})["lockgate.step.outcome"] for s in gate_spans] == [
        "parked",
        "completed",
    ]
    assert approval.run.status == "SUCCEEDED"


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server on 127.0.0.1 that records the headers it got."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/notify", seen
    server.shutdown()
    server.server_close()


async def test_a_traceparent_on_post_runs_is_the_runs_ancestor_and_api_steps_send_theirs(
    spans: InMemorySpanExporter,
    served: Served,
    downstream: tuple[str, list[dict[str, str]]],
    tmp_path: Path,
) -> None:
    url, seen = downstream
    path = tmp_path / "notify.yaml"
    path.write_text(
        f"""
name: notify
steps:
  - name: call
    kind: api
    method: POST
    url: {url}
    body: {{"hello": "world"}}
"""
    )
    served.app.register(load_file(path))
    async with served.client("operator") as client:
        r = await client.post(
            "/api/v1/runs", json={"pipeline": "notify"}, headers={"traceparent": CALLER}
        )
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        await served.app.wait(run_id, timeout=10)
    await wait_for(lambda: named(of_run(spans, run_id), "RUN notify"))

    [request] = [s for s in spans.get_finished_spans() if s.name == "POST /api/v1/runs"]
    assert hexid(request)[0] == CALLER_TRACE and parent_of(request) == CALLER_SPAN
    found = of_run(spans, run_id)
    [root] = named(found, "RUN notify")
    assert hexid(root)[0] == CALLER_TRACE
    assert parent_of(root) == hexid(request)[1]  # the run continues the request's trace
    [call] = named(found, "call")
    [sent] = seen
    assert sent["traceparent"] == "00-{}-{}-01".format(*hexid(call))

    # The run's page in the console shows the trace id to look up.
    cookie, _ = served.app.sessions.sign_in(served.tokens["viewer"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        page = await browser.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "<dt>Trace</dt>" in page.text
    assert CALLER_TRACE in page.text


async def test_a_message_traceparent_is_the_runs_parent_and_the_batch_links_to_it(
    app: App,
    worker: Worker,
    spans: InMemorySpanExporter,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    stream = f"traced-{uuid.uuid4().hex[:8]}"
    register(app, tmp_path)
    queue = app.queues.create(
        pipeline="shipped", broker="redis", url=redis_server.url, source=stream, params=PARAMS
    )
    broker = redis.Redis.from_url(redis_server.url)
    body = json.dumps({"version": "2.0.0"}).encode()
    broker.xadd(stream, {"body": body, "traceparent": CALLER})
    broker.xadd(stream, {"body": json.dumps({"version": "2.0.1"}).encode()})
    broker.close()
    stop = asyncio.Event()
    task = asyncio.create_task(app.queues.run(stop))
    try:
        found = await wait_for(lambda: len(app.deliveries.list(queue.id)) == 2)
        assert found
        runs = {
            d.payload["body"]["version"]: await app.wait(d.run_ids[0], timeout=20)
            for d in app.deliveries.list(queue.id)
        }
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    [batch] = [s for s in spans.get_finished_spans() if s.name == f"process {stream}"]
    assert (batch.attributes or {})["messaging.system"] == "redis"
    assert [f"{link.context.span_id:016x}" for link in batch.links] == [CALLER_SPAN]
    traced = runs["2.0.0"]
    assert traced.trace_context is not None and traced.trace_parent == CALLER_SPAN
    assert traced.trace_context.startswith(f"00-{CALLER_TRACE}-")
    untraced = runs["2.0.1"]  # no traceparent of its own: a child of the batch's span
    assert untraced.trace_parent == hexid(batch)[1]
    await wait_for(lambda: named(of_run(spans, traced.id), "RUN shipped"))
    [root] = named(of_run(spans, traced.id), "RUN shipped")
    assert parent_of(root) == CALLER_SPAN and hexid(root)[0] == CALLER_TRACE


async def test_a_webhook_traceparent_continues_into_the_run(
    spans: InMemorySpanExporter, served: Served
) -> None:
    async with served.client("admin") as admin:
        r = await admin.post(
            "/api/v1/triggers",
            json={
                "pipeline": "deploy",
                "provider": "generic",
                "secret": "s3cret-s3cret-s3cret",
                "params": {"env": "${payload.target}"},
            },
        )
        assert r.status_code == 201, r.text
        trigger = r.json()["id"]
    body = b'{"event": "release", "target": "staging", "id": "rel-1"}'
    signature = "sha256=" + hmac.new(b"s3cret-s3cret-s3cret", body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post(
            f"/hooks/{trigger}",
            content=body,
            headers={"X-Signature": signature, "traceparent": CALLER},
        )
        assert r.status_code == 202, r.text
        [run_id] = r.json()["run_ids"]
    run = await served.app.wait(run_id, timeout=20)
    assert run.trace_context is not None and run.trace_context.startswith(f"00-{CALLER_TRACE}-")
    [request] = [s for s in spans.get_finished_spans() if s.name == "POST /hooks/{trigger_id}"]
    assert run.trace_parent == hexid(request)[1] and parent_of(request) == CALLER_SPAN


def test_without_otel_settings_nothing_of_the_sdk_is_imported(tmp_path: Path) -> None:
    """No OTEL_* environment: a run goes through with no trace and no SDK module loaded."""
    script = f"""
import asyncio, sys
from lockgate import App, Pipeline, Settings, StepContext, step
from lockgate.observability import tracing

@step
def one(ctx: StepContext) -> None:
    assert ctx.traceparent is None

async def main() -> None:
    app = App(Settings(database_url="sqlite:///{tmp_path / "off.db"}"))
    app.migrate()
    app.register(Pipeline("plain", [one]))
    worker = app.worker()
    await worker.start()
    record = app.start_run("plain")
    done = await app.wait(record.id, timeout=20)
    await worker.stop()
    print(done.status, done.trace_context, app.tracer.on)
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["SUCCEEDED None False", "[]"]


def test_otel_settings_are_read_from_the_environment_and_bad_ones_named() -> None:
    script = """
import os
from lockgate.observability import tracing
from opentelemetry import trace
t = tracing.from_environment(os.environ)
provider = trace.get_tracer_provider()
print(t.on, provider.resource.attributes["service.name"] if t.on else "-")
"""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    run = lambda env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script], env={**base, **env}, capture_output=True, text=True
    )
    on = run({"OTEL_TRACES_EXPORTER": "console"})
    assert on.stdout.split() == ["True", "lockgate"], on.stderr
    named_service = run({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "deployer"})
    assert named_service.stdout.split() == ["True", "deployer"], named_service.stderr
    off = run({"OTEL_TRACES_EXPORTER": "none"})
    assert off.stdout.split()[0] == "False"
    disabled = run(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}
    )
    assert disabled.stdout.split()[0] == "False"
    grpc = run({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert grpc.returncode != 0 and "use http/protobuf" in grpc.stderr
    unknown = run({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert unknown.returncode != 0 and "unknown exporter 'zipkin'" in unknown.stderr


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
    ],
)
def test_a_bad_traceparent_is_ignored(value: str | None) -> None:
    assert tracing.parse_traceparent(value) is None


def test_a_good_traceparent_is_read() -> None:
    assert tracing.parse_traceparent(CALLER) == (int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), 1)
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
    assert tracing.parse_traceparent(later) == (int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), 0)


async def test_a_run_not_sampled_where_it_was_created_records_no_span(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(settings, tracer=tracing.for_provider(provider))
    worker = app.worker()
    await worker.start()
    try:
        seen: list[str | None] = []

        @step
        def one(ctx: StepContext) -> None:
            seen.append(ctx.traceparent)

        app.register(Pipeline("unsampled", [one]))
        run_id = await finish(app, worker, "unsampled")
        stored = app.get_run(run_id).run
        assert stored.status == RunStatus.SUCCEEDED
        assert stored.trace_context is not None and stored.trace_context.endswith("-00")
        assert exporter.get_finished_spans() == ()
        assert seen == [stored.trace_context]  # handed on, flagged not sampled
    finally:
        await worker.stop()
        app.close()
        provider.shutdown()


async def test_a_malformed_traceparent_on_post_runs_starts_a_trace_of_its_own(
    spans: InMemorySpanExporter, served: Served
) -> None:
    async with served.client("operator") as client:
        r = await client.post(
            "/api/v1/runs",
            json={"pipeline": "deploy", "params": {"env": "dev"}},
            headers={"traceparent": "00-not-a-trace-01"},
        )
        assert r.status_code == 201, r.text
    run = await served.app.wait(r.json()["id"], timeout=20)
    assert run.status == RunStatus.SUCCEEDED and run.trace_context is not None
    [request] = [s for s in spans.get_finished_spans() if s.name == "POST /api/v1/runs"]
    assert request.parent is None  # the header was ignored: the request began the trace
    assert run.trace_context.split("-")[1] == hexid(request)[0]


def test_a_stored_trace_context_that_is_not_one_traces_nothing_and_breaks_nothing() -> None:
    provider = TracerProvider()
    tracer = tracing.for_provider(provider)
    try:
        off = tracer.run("r1", "p", "garbage", None, "w")
        assert not off.on
        kept = tracer.run("r1", "p", CALLER, "not-hex-at-all!!", "w")
        assert kept.on  # a bad parent id: the run span becomes a root, nothing fails
    finally:
        tracer.close()
        provider.shutdown()


def test_the_exporter_process_exports_every_record_and_ends_with_its_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.resources import Resource

    from lockgate.observability.shipping import ShippingSink
    from lockgate.testing import TraceReceiver

    with TraceReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        sink = ShippingSink(Resource({"service.name": "shipped", "process.pid": 4242}))
        trace_id = int(CALLER_TRACE, 16)
        for n in range(1, 1201):  # more than one batch
            sink.add((f"s{n}", trace_id, n, 0, 0, n, n + 1, 0, None, {"n": n}, []))
        sink.flush()
        received = 0
        for _ in range(200):
            received = receiver.count
            if received == 1200:
                break
            threading.Event().wait(0.05)
        assert received == 1200  # exported on a flush, the process still running
        sink.add(("last", trace_id, 5000, 1, 1, 1, 2, 2, "it broke", {}, [("exception", 1, {})]))
        sink.close()  # its input ends: it exports what is left and exits
        assert sink._proc is not None and sink._proc.returncode == 0
        assert receiver.count == 1201 and sink.dropped == 0
    last = next(s for s in receiver.spans if s["name"] == "last")
    assert last["parent"] == f"{1:016x}" and last["status"] == 2
    assert last["resource"] == {"service.name": "shipped", "process.pid": 4242}


async def test_a_failed_steps_wait_for_a_decision_is_a_span(
    app: App, worker: Worker, spans: InMemorySpanExporter
) -> None:
    @step(on_failure="ask", skippable=True)
    def shaky(ctx: StepContext) -> None:
        raise RuntimeError("down")

    app.register(Pipeline("asked", [shaky]))
    record = await asyncio.to_thread(app.start_run, "asked", None)
    worker.wake()
    await wait_for(lambda: app.get_run(record.id).run.status == "WAITING")
    await asyncio.to_thread(app.acting("olga", ["operator"]).resolve, record.id, "skip")
    worker.wake()
    assert (await app.wait(record.id, timeout=20)).status == RunStatus.SUCCEEDED
    found = of_run(spans, record.id)
    [root] = named(found, "RUN asked")
    [decision] = named(found, "decision shaky")
    assert parent_of(decision) == hexid(root)[1]
    attrs = decision.attributes or {}
    assert attrs["lockgate.approval.settled_by"] == "olga"
    assert "lockgate.approval.decisions" not in attrs
