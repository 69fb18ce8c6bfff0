"""A restarted server takes its own runs back at once, and every execution is counted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from servers import lockgate_server
from test_crash import PIPELINES, crash_and_resume, make_app, wait_finished

from lockgate import RunStatus

RUNS = 30


def lines(path: Path, what: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.split()[1:] == what.split()]


def test_a_restarted_server_resumes_its_runs_without_waiting_for_their_leases(
    db_url: str, tmp_path: Path
) -> None:
    """SIGKILL a server with 30 runs in flight and start it again (30 s leases): it takes
    its runs back at once with new fencing tokens; nothing completed runs again."""
    ledger = tmp_path / "ledger.txt"
    env = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEDGER": str(ledger),
        "LOCKGATE_SLOW_SECONDS": "5",
        "LOCKGATE_LEASE_SECONDS": "30",
    }
    app = make_app(db_url)
    try:
        runs = [app.start_run("napping").id for _ in range(RUNS)]
        with lockgate_server(env, "--pipelines", PIPELINES) as (_, first):
            deadline = time.monotonic() + 30
            while len(lines(ledger, "nap 1")) < RUNS:
                assert time.monotonic() < deadline, "the runs did not start"
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        restarted = time.monotonic()
        with lockgate_server({**env, "LOCKGATE_SLOW_SECONDS": "0.2"}, "--pipelines", PIPELINES):
            ready = time.monotonic()
            while len(lines(ledger, "nap 2")) < RUNS:
                assert time.monotonic() - ready < 10, "the runs were not resumed"
                time.sleep(0.02)
            resumed = time.monotonic()
            assert [wait_finished(app, r) for r in runs] == [RunStatus.SUCCEEDED] * RUNS
        print(
            json.dumps(
                {
                    "runs": RUNS,
                    "restart_to_ready_s": round(ready - restarted, 2),
                    "restart_to_all_resumed_s": round(resumed - restarted, 2),
                }
            )
        )
        # Within 2 s of the server being up (its leases had 30 s left).
        assert resumed - ready < 2.0
        counts = Counter(line.split()[1] for line in ledger.read_text().splitlines())
        assert counts == {"prepare": RUNS, "nap": 2 * RUNS, "finish": RUNS}
    finally:
        app.close()


def test_every_execution_of_a_step_gets_its_own_attempt(db_url: str, tmp_path: Path) -> None:
    """A step killed before anything about it was written still counts: the next execution
    is attempt 2, and the history lists attempt 1 as lost with its worker."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "3"}
    app = make_app(db_url)
    try:
        run_id = app.start_run("hogging").id
        fast = {"LOCKGATE_SLOW_SECONDS": "0"}
        status = crash_and_resume(app, db_url, env, run_id, f"{run_id} hog 1", fast)
        assert status == RunStatus.SUCCEEDED
        hogs = [line for line in ledger.read_text().splitlines() if " hog " in line]
        assert hogs == [f"{run_id} hog 1", f"{run_id} hog 2"]
        shown = subprocess.run(
            [sys.executable, "-m", "lockgate", "runs", "show", run_id, "-o", "json"],
            env={"LOCKGATE_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        steps = {s["name"]: s for s in json.loads(shown.stdout)["steps"]}
        attempts = [(a["attempt"], a["outcome"]) for a in steps["hog"]["attempts"]]
        assert attempts == [(1, "lost"), (2, "completed")]
        assert all(a["worker"] for a in steps["hog"]["attempts"])
        assert steps["hog"]["attempt"] == 2
    finally:
        app.close()


def test_rest_shows_attempts_and_errors(db_url: str, tmp_path: Path) -> None:
    """Over REST a run carries each step's attempts and its recorded errors with their
    tracebacks, the cause first."""
    env = {"LOCKGATE_DATABASE_URL": db_url, "LOCKGATE_LEDGER": str(tmp_path / "l.txt")}
    app = make_app(db_url)
    try:
        token = app.tokens.create("reader", "viewer")[1]
        run_id = app.start_run("failing").id
        with lockgate_server(env, "--pipelines", PIPELINES) as (url, _):
            assert wait_finished(app, run_id) in (RunStatus.FAILED, RunStatus.ROLLED_BACK)
            headers = {"Authorization": f"Bearer {token}"}
            run = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=headers).json()
        [error] = run["errors"]
        assert error["step"] == "broken" and "always fails" in error["message"]
        assert "RuntimeError: always fails" in error["traceback"]
        broken = next(s for s in run["steps"] if s["name"] == "broken")
        assert [a["outcome"] for a in broken["attempts"]] == ["failed"]
    finally:
        app.close()
