"""``lockgate approvals list``, ``approve`` and ``reject`` as a person uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from lockgate import App, RunStatus, Settings
from lockgate.specs import load_file
from lockgate.testing import eventually

GATED = """\
name: gated
steps:
  - name: sign-off
    kind: approval
    message: Ship it?
    approvers: {users: [alice, bob]}
    input:
      ticket: {type: string, required: true}
  - name: done
    kind: shell
    argv: [echo, "${steps.sign-off.input.ticket}"]
"""


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCKGATE_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def wait_status(app: App, run_id: str, status: str) -> None:
    reached = lambda: app.get_run(run_id).run.status == status  # noqa: E731
    eventually(reached, f"run {run_id} {status}", timeout=30, every=0.05)


def test_approve_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    """A pending approval is listed, refused for outsiders and bad input, then approved."""
    path = tmp_path / "gated.yaml"
    path.write_text(GATED)
    app = App(Settings(database_url=db_url))
    app.migrate()
    app.register(load_file(path))
    env = {**os.environ, "LOCKGATE_DATABASE_URL": db_url, "LOCKGATE_POLL_INTERVAL": "0.05"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "worker", "--pipelines", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = app.acting("carol").start_run("gated").id
        wait_status(app, run_id, RunStatus.WAITING)
        listed = cli(db_url, "approvals", "list", "-o", "json")
        [pending] = json.loads(listed.stdout)
        assert pending["run_id"] == run_id and pending["message"] == "Ship it?"
        outsider = cli(db_url, "approve", run_id, "--as", "mallory", "-i", "ticket=T-1")
        assert outsider.returncode == 5 and "mallory may not decide" in outsider.stderr
        missing = cli(db_url, "approve", run_id, "--as", "alice")
        assert missing.returncode == 2 and "ticket: Field required" in missing.stderr
        ok = cli(db_url, "approve", run_id, "--as", "alice", "-i", "ticket=T-1", "-m", "fine")
        assert ok.returncode == 0, ok.stderr
        assert f"approved step sign-off of run {run_id} as alice" in ok.stdout
        wait_status(app, run_id, RunStatus.SUCCEEDED)
        again = cli(db_url, "reject", run_id, "--as", "bob")
        assert again.returncode == 4 and "not waiting for a decision" in again.stderr
        assert app.get_run(run_id).steps[1].output["stdout"] == "T-1"
        more = [app.acting("carol").start_run("gated").id for _ in range(2)]
        for other in more:
            wait_status(app, other, RunStatus.WAITING)
        bulk = cli(db_url, "approve", *more, run_id, "--as", "bob", "-i", "ticket=T-2")
        assert bulk.returncode == 1  # one of them was refused
        for other in more:
            assert f"approved step sign-off of run {other} as bob" in bulk.stdout
        assert f"refused run {run_id} (invalid_state)" in bulk.stderr
        assert "2 decided, 1 refused" in bulk.stdout
        for other in more:
            wait_status(app, other, RunStatus.SUCCEEDED)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        app.close()
