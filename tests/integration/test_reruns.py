"""Re-runs: a finished run's params again, on its version or the newest, recorded and audited."""

from __future__ import annotations

import pytest
from api_support import Served, wait_done

from lockgate import App, InvalidState, Pipeline, StepContext, step


@step
def first(ctx: StepContext) -> str:
    return "v1"


@step
def second(ctx: StepContext) -> str:
    return "v2"


async def test_a_rerun_takes_the_params_and_by_default_the_version(served: Served) -> None:
    """Over REST: the re-run has the old run's params and version and names it; with
    ``latest`` it runs the newest version; both are audited. An active run, a channel's
    run and an unknown id are refused with their codes."""
    app: App = served.app
    async with served.client("operator") as op:
        started = await op.post(
            "/api/v1/runs", json={"pipeline": "deploy", "params": {"env": "qa"}}
        )
        old = await wait_done(op, started.json()["id"])
        app.register(Pipeline("deploy", [first, second]))  # a new version, other params
        again = await op.post(f"/api/v1/runs/{old['id']}/rerun")
        assert again.status_code == 201, again.text
        same = await wait_done(op, again.json()["id"])
        assert (same["params"], same["version"], same["rerun_of"]) == (
            old["params"],
            old["version"],
            old["id"],
        )
        assert same["status"] == "SUCCEEDED" and same["requested_by"] == "operator-bot"
        newest = await op.post(f"/api/v1/runs/{old['id']}/rerun", json={"latest": True})
        assert newest.status_code == 201
        done = await wait_done(op, newest.json()["id"])
        assert done["version"] != old["version"]
        assert [s["output"] for s in done["steps"]] == ["v1", "v2"]
        missing = await op.post("/api/v1/runs/nope/rerun")
        assert missing.status_code == 404
        bad = await op.post(f"/api/v1/runs/{old['id']}/rerun", json={"latest": "maybe"})
        assert bad.status_code == 422
    async with served.client("viewer") as viewer:
        refused = await viewer.post(f"/api/v1/runs/{old['id']}/rerun")
        assert refused.status_code == 403
    actions = [(e.action, e.details) for e in app.store.get_audit(0) if e.action == "run.rerun"]
    assert actions == [
        ("run.rerun", {"of": old["id"], "version": "same"}),
        ("run.rerun", {"of": old["id"], "version": "latest"}),
    ]


async def test_only_a_finished_run_is_run_again(app: App) -> None:
    """A run still going is refused, with its status."""
    app.register(Pipeline("slow", [first]))
    run = app.start_run("slow")  # no worker: it stays PENDING
    with pytest.raises(InvalidState) as info:
        app.rerun(run.id)
    assert info.value.details == {"status": "PENDING"}
    assert "only a finished run" in info.value.message
