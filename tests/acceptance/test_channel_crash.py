"""A worker killed with SIGKILL in the middle of a channel deployment: the deployment resumes
on a new worker and ends consistent, every stage old or every stage new."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from test_crash import start_worker as start_any_worker
from test_crash import wait_finished, wait_for_line

from lockgate import App, Settings
from lockgate.specs.discover import load_definitions

CHANNEL = str(Path(__file__).parent / "pipelines" / "crashy_channel.py")


def start_worker(db_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_any_worker(db_url, env, CHANNEL)


def crashy_app(db_url: str) -> App:
    """An App on ``db_url`` with the crashy channel registered."""
    app = App(Settings(database_url=db_url))
    app.migrate()
    [channel] = load_definitions([CHANNEL])[1]
    app.channels.register(channel)
    return app


def check_consistent(app: App, expected_version: int) -> None:
    """Every stage serves ``expected_version``; every flip belongs to a deployment, and
    replaying the flips of each stage gives where it points now."""
    stages = {st.stage: st.version for st in app.channels.stages("crashy")}
    assert stages == {"one": expected_version, "two": expected_version, "three": expected_version}
    known = {d.id for d in app.channels.rows.deployments("crashy", limit=1000)}
    for stage in stages:
        flips = list(reversed(app.channels.rows.flips("crashy", stage, limit=1000)))
        pointer = None
        for f in flips:
            assert f.deployment_id in known
            assert f.from_version == pointer, (stage, f)
            pointer = f.to_version
        assert pointer == stages[stage]


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_sigkill_mid_deployment_resumes_and_ends_consistent(
    db_url: str, tmp_path: Path, outcome: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "0"}
    app = crashy_app(db_url)
    try:
        # A first deployment to have an "old" manifest on every stage.
        first = app.channels.push("crashy", "acme", {"n": 1})
        worker = start_worker(db_url, env)
        try:
            assert wait_finished(app, first.run_id) == "SUCCEEDED"
        finally:
            worker.terminate()
            worker.wait(20)
        check_consistent(app, 1)

        # The second is killed in stage two's test: one and two already flipped.
        second = app.channels.push("crashy", "globex", {"n": 2})
        third = app.channels.push("crashy", "acme", {"n": 3})
        victim = start_worker(db_url, {**env, "LOCKGATE_SLOW_SECONDS": "5"})
        wait_for_line(ledger, f"{second.id} two")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        mid = {st.stage: st.version for st in app.channels.stages("crashy")}
        assert mid == {"one": 2, "two": 2, "three": 1}

        fail = "1" if outcome == "fails" else "0"
        rescuer = start_worker(db_url, {**env, "LOCKGATE_FAIL_TESTS": fail})
        try:
            status = wait_finished(app, second.run_id, timeout=60)
            assert status == ("SUCCEEDED" if outcome == "succeeds" else "ROLLED_BACK")
            # The push queued behind it goes on from the right manifest.
            third_status = wait_finished(app, third.run_id, timeout=60)
        finally:
            rescuer.terminate()
            rescuer.wait(20)
        if outcome == "succeeds":
            assert third_status == "SUCCEEDED"
            check_consistent(app, 3)
            assert app.channels.stage_manifest("crashy", "three").data() == {
                "pushes": ["acme:1", "globex:2", "acme:3"]
            }
            assert app.channels.manifest("crashy", 3).parent == 2
        else:
            assert third_status == "ROLLED_BACK"  # the rescuer fails every stage-two test
            check_consistent(app, 1)
            assert app.channels.manifest("crashy", 3).parent == 1  # never merged onto 2
        # Stage two's test ran again for the killed deployment (at least once more).
        runs_of_two = [
            line for line in ledger.read_text().splitlines() if line.startswith(f"{second.id} two")
        ]
        assert len(runs_of_two) == 2
    finally:
        app.close()


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_sigkill_mid_stage_rollback_resumes_and_flips_back_on_failure(
    db_url: str, tmp_path: Path, outcome: str
) -> None:
    """A stage rolled back to an earlier manifest is a deployment like any other: killed
    in the stage's test after its flip, it resumes on a new worker; the test passing keeps
    the stage on the earlier manifest, failing flips it back; the other stages never move,
    and every flip replays to where each stage points."""
    ledger = tmp_path / "ledger.txt"
    env = {"LOCKGATE_LEDGER": str(ledger), "LOCKGATE_SLOW_SECONDS": "0"}
    app = crashy_app(db_url)
    try:
        pushes = [app.channels.push("crashy", "acme", {"n": n}) for n in (1, 2)]
        worker = start_worker(db_url, env)
        try:
            for push in pushes:
                assert wait_finished(app, push.run_id) == "SUCCEEDED"
        finally:
            worker.terminate()
            worker.wait(20)
        check_consistent(app, 2)

        back = app.acting("ops").channels.rollback_stage("crashy", "two", 1)
        victim = start_worker(db_url, {**env, "LOCKGATE_SLOW_SECONDS": "5"})
        wait_for_line(ledger, f"{back.id} two")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        mid = {st.stage: st.version for st in app.channels.stages("crashy")}
        assert mid == {"one": 2, "two": 1, "three": 2}  # flipped, its test cut short

        fail = "1" if outcome == "fails" else "0"
        rescuer = start_worker(db_url, {**env, "LOCKGATE_FAIL_TESTS": fail})
        try:
            status = wait_finished(app, back.run_id, timeout=60)
        finally:
            rescuer.terminate()
            rescuer.wait(20)
        after = {st.stage: st.version for st in app.channels.stages("crashy")}
        if outcome == "succeeds":
            assert status == "SUCCEEDED"
            assert after == {"one": 2, "two": 1, "three": 2}
        else:
            assert status == "ROLLED_BACK"
            assert after == {"one": 2, "two": 2, "three": 2}  # flipped back
        assert app.channels.manifest("crashy", 2).version == 2  # the head stays
        known = {d.id for d in app.channels.rows.deployments("crashy", limit=1000)}
        for stage, now in after.items():
            pointer = None
            for f in reversed(app.channels.rows.flips("crashy", stage, limit=1000)):
                assert f.deployment_id in known
                assert f.from_version == pointer, (stage, f)
                pointer = f.to_version
            assert pointer == now
        tests_of_two = [ln for ln in ledger.read_text().splitlines() if ln.startswith(back.id)]
        assert len(tests_of_two) == 2  # cut short once, then run again to its end
    finally:
        app.close()
