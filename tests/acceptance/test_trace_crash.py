"""A traced run survives a SIGKILL: real processes export over OTLP/HTTP to a receiver the
test runs, and the run resumed on another worker continues the same trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from servers import lockgate_server

from lockgate import App, RunStatus, Settings
from lockgate.testing import TraceReceiver, eventually

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def test_a_run_resumed_on_another_worker_after_a_sigkill_continues_its_trace(
    db_url: str, tmp_path: Path
) -> None:
    app = App(Settings(database_url=db_url))
    app.migrate()
    _, token = app.tokens.create("ci", "operator")
    ledger = tmp_path / "ledger"
    with TraceReceiver() as receiver:
        env = {
            "LOCKGATE_DATABASE_URL": db_url,
            "LOCKGATE_LEASE_SECONDS": "1",
            "LOCKGATE_POLL_INTERVAL": "0.05",
            "LOCKGATE_LEDGER": str(ledger),
            "LOCKGATE_SLOW_SECONDS": "60",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "lockgate-test",
        }
        with lockgate_server(env, "--pipelines", PIPELINES) as (url, first):
            r = httpx.post(
                f"{url}/api/v1/runs",
                json={"pipeline": "crashy"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                },
            )
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            eventually(
                lambda: ledger.exists() and f"{run_id} slow 1" in ledger.read_text(),
                "the slow step",
            )
            # The first step's span was exported before the kill.
            eventually(
                lambda: [s for s in receiver.spans if s["name"] == "prepare"], "prepare's span"
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        second = subprocess.Popen(
            [sys.executable, "-m", "lockgate", "worker", "--pipelines", PIPELINES],
            env={**os.environ, **env, "LOCKGATE_SLOW_SECONDS": "0.1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            eventually(lambda: RunStatus(app.get_run(run_id).run.status).terminal, "the run")
            assert app.get_run(run_id).run.status == RunStatus.SUCCEEDED
            eventually(
                lambda: [s for s in receiver.spans if s["name"] == "RUN crashy"], "the run span"
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0

    spans = receiver.spans
    request = next(s for s in spans if s["name"] == "POST /api/v1/runs")
    ours = [s for s in spans if _attr(s, "cicd.pipeline.run.id") == run_id]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in ours:
        by_name.setdefault(str(span["name"]), []).append(span)
    [root] = by_name["RUN crashy"]
    [prepare] = by_name["prepare"]
    [finish] = by_name["finish"]
    slow = by_name["slow"]  # the killed attempt's span never ended: only the resumed one
    assert [_attr(s, "lockgate.step.attempt") for s in slow] == [2]

    # One trace, the caller's, from the request through both workers.
    assert {s["trace_id"] for s in [request, *ours]} == {CALLER_TRACE}
    assert request["parent"] == CALLER_SPAN
    assert root["parent"] == request["span_id"]
    assert {s["parent"] for s in [prepare, *slow, finish]} == {root["span_id"]}
    stored = app.get_run(run_id).run
    assert stored.trace_context == f"00-{CALLER_TRACE}-{root['span_id']}-01"

    # The run began on the server and was finished by the second worker.
    pid = lambda s: s["resource"]["process.pid"]  # noqa: E731
    assert pid(prepare) == pid(request) == first.pid
    assert pid(slow[0]) == pid(finish) == pid(root) == second.pid
    assert prepare["resource"]["service.name"] == "lockgate-test"
    assert _attr(root, "cicd.pipeline.result") == "success"
    assert root["start"] <= prepare["start"] and root["end"] >= finish["end"]
    app.close()


def _attr(span: dict[str, Any], name: str) -> Any:
    return span["attributes"].get(name)
