"""Real worker processes killed with SIGKILL mid-step, restarted, and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lockgate import App, RunStatus, Settings
from lockgate.specs.discover import load_pipelines
from lockgate.testing import eventually

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")


def start_worker(
    db_url: str, env: dict[str, str], pipelines: str = PIPELINES
) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEASE_SECONDS": "1",
        "LOCKGATE_POLL_INTERVAL": "0.05",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lockgate", "worker", "--pipelines", pipelines],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_line(path: Path, needle: str, timeout: float = 30) -> None:
    seen = lambda: path.exists() and needle in path.read_text()  # noqa: E731
    eventually(seen, f"{needle!r} in {path}", timeout)


def wait_finished(app: App, run_id: str, timeout: float = 30) -> str:
    def status() -> str | None:
        found = app.get_run(run_id).run.status
        return found if RunStatus(found).terminal else None

    return str(eventually(status, f"run {run_id} to finish", timeout, every=0.05))


def crash_and_resume(
    app: App, db_url: str, env: dict[str, str], run_id: str, line: str, after: dict[str, str]
) -> str:
    """Start a worker, SIGKILL it once ``line`` is in the ledger, start another (with
    ``after`` added to ``env``) and return the run's final status."""
    first = start_worker(db_url, env)
    wait_for_line(Path(env["LOCKGATE_LEDGER"]), line)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = start_worker(db_url, {**env, **after})
    try:
        return wait_finished(app, run_id)
    finally:
        second.terminate()
        second.wait(20)


def make_app(db_url: str) -> App:
    app = App(Settings(database_url=db_url))
    app.migrate()
    app.register(*load_pipelines([PIPELINES]))
    return app


def test_sigkill_mid_step_resumes_without_rerunning_completed_steps(
    db_url: str, tmp_path: Path
) -> None:
    """kill -9 during a step: the restarted worker re-runs only that step, then finishes."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "3"}
    app = make_app(db_url)
    try:
        run_id = app.start_run("crashy").id
        fast = {"LOCKGATE_SLOW_SECONDS": "0"}
        status = crash_and_resume(app, db_url, env, run_id, f"{run_id} slow 1", fast)
        assert status == RunStatus.SUCCEEDED
        counts = Counter(line.split()[1] for line in ledger.read_text().splitlines())
        assert counts == {"prepare": 1, "slow": 2, "finish": 1}
        final = app.get_run(run_id).steps[-1].output
        assert final == {"prepared": 1, "slow": 1, "finished": 1}
    finally:
        app.close()


def test_sigkill_during_non_idempotent_step_rolls_back_instead(db_url: str, tmp_path: Path) -> None:
    """kill -9 during an idempotent=False step: it is not run again; it rolls back."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "3"}
    app = make_app(db_url)
    try:
        run_id = app.start_run("once").id
        status = crash_and_resume(app, db_url, env, run_id, f"{run_id} charge 1", {})
        assert status == RunStatus.ROLLED_BACK
        steps = [line.split()[1] for line in ledger.read_text().splitlines()]
        assert steps == ["prepare", "charge", "charge.rollback"]
    finally:
        app.close()


@pytest.mark.parametrize(
    ("pipeline", "step"),
    [
        ("ordering", "order"),
        ("async-ordering", "async_order"),
        ("awaited-ordering", "awaited_order"),
    ],
)
def test_a_save_survives_a_sigkill_right_after_it(
    db_url: str, tmp_path: Path, pipeline: str, step: str
) -> None:
    """Threat: a rollback without the ids of what its step created. ``ctx.save()`` is
    durable when it returns: kill -9 after it, and the rollback of the idempotent=False step
    (not run again) receives what was saved, from a sync step's thread and an async step's
    loop alike."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "30"}
    app = make_app(db_url)
    try:
        run_id = app.start_run(pipeline).id
        status = crash_and_resume(app, db_url, env, run_id, f"{run_id} {step} 1", {})
        assert status == RunStatus.ROLLED_BACK
        steps = [line.split()[1] for line in ledger.read_text().splitlines()]
        assert steps == ["prepare", step, f"{step}.rollback:o-{run_id}"]
    finally:
        app.close()


def test_sigterm_finishes_in_flight_work_and_exits_zero(db_url: str, tmp_path: Path) -> None:
    """SIGTERM stops claiming, lets the running step finish, and exits 0."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "1"}
    app = make_app(db_url)
    try:
        run_id = app.start_run("crashy").id
        proc = start_worker(db_url, env)
        wait_for_line(ledger, f"{run_id} slow 1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert app.get_run(run_id).run.status == RunStatus.SUCCEEDED
    finally:
        app.close()


def test_sigkill_while_parked_for_a_decision_and_while_acting_on_it(
    db_url: str, tmp_path: Path
) -> None:
    """A failed step waits for a decision; its worker is killed while the run is parked,
    the retry is decided with no worker up, the next worker is killed while the retried
    attempt runs, and a third finishes the run: nothing lost, prepare and finish once."""
    ledger_file = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger_file), "LOCKGATE_SLOW_SECONDS": "2"}
    app = make_app(db_url)
    run = app.start_run("asking")
    first = start_worker(db_url, env)
    deadline = time.monotonic() + 30
    while app.approval(run.id) is None:
        assert time.monotonic() < deadline, app.get_run(run.id).run.status
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert app.get_run(run.id).run.status == "WAITING"
    app.acting("olga", ["operator"]).resolve(run.id, "retry")
    second = start_worker(db_url, env)
    wait_for_line(ledger_file, f"{run.id} wobbly 2")
    second.send_signal(signal.SIGKILL)
    second.wait(10)
    third = start_worker(db_url, env)
    try:
        assert wait_finished(app, run.id) == "SUCCEEDED"
    finally:
        third.terminate()
        third.wait(20)
    done = Counter(line.split()[1] for line in ledger_file.read_text().splitlines())
    assert done["prepare"] == 1 and done["finish"] == 1
    assert done["wobbly"] == 3  # the failure, the killed retry, the one that finished
    assert app.get_run(run.id).steps[1].output["wobbly"] == 3
    app.close()
