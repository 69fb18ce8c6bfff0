"""The bundled examples load and run as documented."""

from __future__ import annotations

import pytest

from lockgate import App, RunStatus
from lockgate.specs.discover import load_definitions, load_pipelines
from lockgate.testing import eventually_async


@pytest.fixture
def examples_app(app: App) -> App:
    app.register(*load_pipelines(["lockgate.examples"]))
    return app


async def test_examples_load(examples_app: App) -> None:
    """``--examples`` finds both the Python and the YAML examples."""
    assert {p.name for p in examples_app.registry} == {
        "release",
        "build-and-deploy",
        "service-request",
    }


@pytest.mark.parametrize(("smoke_fails", "status"), [(False, "SUCCEEDED"), (True, "ROLLED_BACK")])
async def test_build_and_deploy_example(examples_app: App, smoke_fails: bool, status: str) -> None:
    """The shell-step example deploys, or rolls the deploy back when the smoke test fails."""
    params = {"service": "web", "version": "2.1.0", "smoke_fails": smoke_fails}
    done = await examples_app.execute_async("build-and-deploy", params, timeout=30)
    assert done.status == status
    steps = {s.name: s for s in examples_app.get_run(done.id).steps}
    assert steps["deploy"].output["stdout"].startswith("deployed web as ")
    if smoke_fails:
        logs = [line.message for line in examples_app.logs(done.id, "deploy")]
        assert "restored previous release of web" in logs


async def test_release_example_rolls_back_on_request(examples_app: App) -> None:
    """The Python example's ``fail_at`` shows the reverse-order rollback."""
    done = await examples_app.execute_async(
        "release", {"service": "billing", "version": "1.4.2", "fail_at": "verify"}, timeout=30
    )
    assert done.status == RunStatus.ROLLED_BACK
    assert "verify failed on purpose" in (done.error or "")


async def test_flags_channel_examples(app: App) -> None:
    """The Python flags channel waits for an approver before prod; the YAML one deploys
    straight to its one stage, its shell test naming the version."""
    app.channels.register(*load_definitions(["lockgate.examples"])[1])
    worker = app.worker()
    await worker.start()
    try:
        lite = app.channels.push("flags-lite", "acme", {"values": ["dark-mode"]})
        full = app.channels.push("flags", "acme", {"values": ["dark-mode", "new-nav"]})
        assert (await app.wait(lite.run_id, timeout=30)).status == RunStatus.SUCCEEDED
        logs = [line.message for line in app.logs(lite.run_id, "live.test")]
        assert "live serves version 1 after acme's push" in logs
        await eventually_async(app.approvals, "prod's approval to wait", 10)
        [pending] = app.approvals()
        assert pending.approval.step == "prod.approval"
        app.acting("alice", ["approver"]).decide(full.run_id, "approve")
        assert (await app.wait(full.run_id, timeout=30)).status == RunStatus.SUCCEEDED
        prod = app.channels.stage_manifest("flags", "prod").data()
        assert prod["tenants"]["acme"]["unique_values"] == ["dark-mode", "new-nav"]
    finally:
        await worker.stop()
