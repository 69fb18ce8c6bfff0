"""Channels end to end on the real store: serialised merges, flips, reverts, approvals, reads."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from api_support import wait_status
from pydantic import BaseModel, Field

from lockgate import App, Channel, ChannelNotFound, ParamsError, PushRequest, Stage, Step
from lockgate.core.statuses import RunStatus
from lockgate.engine.worker import Worker
from lockgate.errors import TooLarge
from lockgate.steps.shell import ShellConfig, ShellKind
from lockgate.testing import eventually_async


class Flags(BaseModel):
    """What a tenant pushes: feature flags, and a marker to find the push again."""

    values: list[str] = Field(min_length=1, max_length=20)
    marker: str


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    """The seed's merge: a top-level count, per-tenant counts, unique and recent values."""
    content: Flags = request.content
    tenants = dict(manifest.get("tenants", {})) if request.command != "clear" else {}
    mine = tenants.get(request.tenant, {"count": 0, "unique": [], "markers": []})
    tenants[request.tenant] = {
        "count": mine["count"] + 1,
        "recent": content.values,
        "unique": sorted(set(mine["unique"]) | set(content.values)),
        "markers": [*mine["markers"], content.marker],
    }
    count = 1 if request.command == "clear" else manifest.get("count", 0) + 1
    return {"count": count, "tenants": tenants}


async def wait_done(app: App, run_ids: list[str], timeout: float = 60) -> list[str]:
    finished = [await app.wait(r, timeout=timeout) for r in run_ids]
    return [run.status for run in finished]


def flags_channel(**overrides: Any) -> Channel:
    options: dict[str, Any] = {
        "merge": merge,
        "request": Flags,
        "commands": ("merge", "clear"),
        "stages": [Stage("beta"), Stage("gamma"), Stage("prod")],
        "queue_poll": 0.5,
    }
    options.update(overrides)
    return Channel("flags", **options)


def push(app: App, tenant: str, marker: str, values: list[str] | None = None) -> str:
    d = app.acting("t").channels.push(
        "flags", tenant, {"values": values or [marker], "marker": marker}
    )
    return d.run_id


async def test_concurrent_pushes_are_merged_one_at_a_time_and_none_is_lost(
    app: App, worker: Worker
) -> None:
    """50 pushes from 10 tenants at once: every push lands in the final manifest exactly
    once, and the manifests form one line (each the parent of the next)."""
    app.channels.register(flags_channel())
    pushes = [(f"tenant-{i % 10}", f"push-{i}") for i in range(50)]
    run_ids = await asyncio.gather(
        *(asyncio.to_thread(push, app, tenant, marker) for tenant, marker in pushes)
    )
    assert await wait_done(app, list(run_ids)) == ["SUCCEEDED"] * 50

    prod = app.channels.stage_manifest("flags", "prod")
    manifest = prod.data()
    assert manifest["count"] == 50
    markers = [m for t in manifest["tenants"].values() for m in t["markers"]]
    assert sorted(markers) == sorted(marker for _, marker in pushes)
    assert {t: manifest["tenants"][t]["count"] for t in manifest["tenants"]} == {
        f"tenant-{i}": 5 for i in range(10)
    }
    # Every stage serves the same, last, manifest; the lineage is one unbroken line.
    assert {st.version for st in app.channels.stages("flags")} == {prod.version}
    history = app.channels.history("flags", limit=100)
    assert [m.version for m in history] == list(range(50, 0, -1))
    assert [m.parent for m in history] == [*range(49, 0, -1), None]
    # Push order is merge order: deployment seq n produced manifest version n.
    deployments = app.channels.deployments("flags", limit=100)
    assert sorted((d.seq, d.manifest_version) for d in deployments) == [
        (n, n) for n in range(1, 51)
    ]
    assert {d.state for d in deployments} == {"SUCCEEDED"}


async def test_a_failing_stage_test_flips_the_earlier_stages_back(app: App, worker: Worker) -> None:
    """A test failing at stage 2 puts stage 1 back; the failed content never reaches the
    next merge."""

    def gamma_test(d: Any) -> Any:
        if "bad" in d.manifest["tenants"][d.tenant]["recent"]:
            return ["gamma refused the flag 'bad'"]
        return None

    app.channels.register(flags_channel(stages=[Stage("beta"), Stage("gamma", test=gamma_test)]))
    first = push(app, "acme", "good-1", ["ok"])
    assert await wait_done(app, [first]) == ["SUCCEEDED"]
    bad = push(app, "acme", "bad-1", ["bad"])
    assert await wait_done(app, [bad]) == ["ROLLED_BACK"]

    stages = {st.stage: st.version for st in app.channels.stages("flags")}
    assert stages == {"beta": 1, "gamma": 1}
    failed = app.channels.rows.deployments("flags")[0]
    assert failed.state == "FAILED" and failed.manifest_version == 2
    assert "gamma refused the flag 'bad'" in (failed.error or "")
    flips = [
        (f.stage, f.kind, f.from_version, f.to_version) for f in app.channels.rows.flips("flags")
    ]
    # Newest first: the later stage is put back first.
    assert flips[:3] == [
        ("beta", "revert", 2, 1),
        ("gamma", "revert", 2, 1),
        ("gamma", "flip", 1, 2),
    ]

    after = push(app, "acme", "good-2", ["fine"])
    assert await wait_done(app, [after]) == ["SUCCEEDED"]
    manifest = app.channels.stage_manifest("flags", "gamma")
    assert manifest.version == 3
    assert app.channels.manifest("flags", 3).parent == 1  # merged onto the last good one
    assert manifest.data()["tenants"]["acme"]["markers"] == ["good-1", "good-2"]
    assert "bad" not in manifest.data()["tenants"]["acme"]["unique"]


async def test_bad_pushes_are_refused_and_leave_nothing_behind(app: App, worker: Worker) -> None:
    app.channels.register(flags_channel(max_content_bytes=200))
    with pytest.raises(ParamsError) as refused:
        app.channels.push("flags", "bad tenant!", {"values": [], "extra": 1}, command="nuke")
    problems = refused.value.problems
    assert any(p.startswith("tenant:") for p in problems)
    assert any("command: 'nuke'" in p for p in problems)
    assert any(p.startswith("content.values") for p in problems)
    assert any(p.startswith("content.marker") for p in problems)
    with pytest.raises(TooLarge):
        app.channels.push("flags", "acme", {"values": ["x" * 300], "marker": "m"})
    with pytest.raises(ChannelNotFound):
        app.channels.push("nope", "acme", {"values": ["x"], "marker": "m"})
    with pytest.raises(ChannelNotFound):
        app.channels.stage_manifest("flags", "staging")
    with pytest.raises(ChannelNotFound, match="no manifest yet"):
        app.channels.stage_manifest("flags", "beta")
    assert app.channels.deployments("flags") == []
    assert app.channels.history("flags") == []
    assert app.list_runs() == []


async def test_merge_or_validation_failure_creates_no_flip(app: App, worker: Worker) -> None:
    async def merge_async(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
        await asyncio.sleep(0)
        return merge(manifest, request)

    def validate_manifest(d: Any) -> Any:
        return d.manifest["count"] <= 1  # a second push makes it invalid

    app.channels.register(flags_channel(merge=merge_async, validate_manifest=validate_manifest))
    ok = push(app, "acme", "one")
    assert await wait_done(app, [ok]) == ["SUCCEEDED"]
    refused = push(app, "acme", "two")
    assert await wait_done(app, [refused]) == ["ROLLED_BACK"]
    assert app.channels.rows.flips("flags", "beta")[0].to_version == 1
    assert app.channels.record("flags").head_version == 1
    d = app.channels.rows.deployments("flags")[0]
    assert "validate_manifest refused the deployment" in (d.error or "")


async def test_approval_gates_the_flip_of_prod(app: App, worker: Worker) -> None:
    """prod flips only after an approver decides; a reject puts beta and gamma back."""
    app.channels.register(
        flags_channel(
            stages=[
                Stage("beta"),
                Stage("gamma"),
                Stage("prod", approval={"approvers": {"roles": ["approver"]}}),
            ]
        )
    )
    run_id = push(app, "acme", "first")
    await wait_step(app, run_id, "prod.approval", "WAITING")
    assert {st.stage: st.version for st in app.channels.stages("flags")} == {
        "beta": 1,
        "gamma": 1,
        "prod": None,
    }
    [pending] = app.approvals()
    assert pending.approval.step == "prod.approval"
    app.acting("alice", ["approver"]).decide(run_id, "approve")
    assert await wait_done(app, [run_id]) == ["SUCCEEDED"]
    assert app.channels.stage_manifest("flags", "prod").version == 1

    second = push(app, "acme", "second")
    await wait_step(app, second, "prod.approval", "WAITING")
    app.acting("alice", ["approver"]).decide(second, "reject", comment="not today")
    assert await wait_done(app, [second]) == ["ROLLED_BACK"]
    assert {st.version for st in app.channels.stages("flags")} == {1}


async def test_a_cancelled_queued_push_does_not_block_the_channel(app: App, worker: Worker) -> None:
    app.channels.register(
        flags_channel(stages=[Stage("beta", approval={"approvers": {"users": ["bob"]}})])
    )
    first = push(app, "acme", "first")
    await wait_step(app, first, "beta.approval", "WAITING")
    queued = push(app, "acme", "queued")
    third = push(app, "acme", "third")
    await wait_status(app, queued, "WAITING")
    app.acting("t").cancel_run(queued)
    assert await wait_done(app, [queued]) == ["CANCELLED"]
    app.acting("bob").decide(first, "approve")
    assert await wait_done(app, [first]) == ["SUCCEEDED"]
    await wait_step(app, third, "beta.approval", "WAITING")
    app.acting("bob").decide(third, "approve")
    assert await wait_done(app, [third]) == ["SUCCEEDED"]
    markers = app.channels.stage_manifest("flags", "beta").data()["tenants"]["acme"]["markers"]
    assert markers == ["first", "third"]


async def test_hooks_may_be_steps_of_any_kind(app: App, worker: Worker) -> None:
    """A shell step as a stage test, with the manifest version as an argument."""
    script = "import sys; sys.exit(0 if int(sys.argv[1]) < 2 else 3)"
    shell = ShellKind()

    async def run_shell(ctx: Any, value: Any) -> Any:
        version = ctx.outputs["merge"]["version"]
        config = ShellConfig(argv=[sys.executable, "-c", script, str(version)])
        return await shell.execute(ctx, config, value)

    test = Step(name="smoke", execute=run_shell)
    app.channels.register(flags_channel(stages=[Stage("beta", test=test)]))
    first = push(app, "acme", "one")
    second = push(app, "acme", "two")
    assert await wait_done(app, [first, second]) == ["SUCCEEDED", "ROLLED_BACK"]
    assert app.channels.stage_manifest("flags", "beta").version == 1
    steps = {s.name: s.status for s in app.get_run(second).steps}
    assert steps["beta.test"] == "FAILED" and steps["beta.flip"] == "ROLLED_BACK"


async def test_reads_etag_slice_history_and_json_schema_requests(app: App, worker: Worker) -> None:
    schema = {
        "type": "object",
        "required": ["values", "marker"],
        "properties": {
            "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "marker": {"type": "string"},
        },
        "additionalProperties": False,
    }

    def merge_dict(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
        as_model = PushRequest(request.tenant, Flags(**request.content), request.command)
        return merge(manifest, as_model)

    app.channels.register(flags_channel(request=schema, merge=merge_dict, stages=[Stage("live")]))
    with pytest.raises(ParamsError) as refused:
        app.channels.push("flags", "acme", {"values": [], "other": 1})
    assert len(refused.value.problems) == 3  # minItems, marker missing, extra property
    runs = [push(app, "acme", "a"), push(app, "globex", "b")]
    assert await wait_done(app, runs) == ["SUCCEEDED", "SUCCEEDED"]
    live = app.channels.stage_manifest("flags", "live")
    assert live.etag == f'"{live.hash}"' and json.loads(live.body) == live.data()
    _, part = app.channels.tenant_slice("flags", "live", "globex")
    assert part["markers"] == ["b"]
    with pytest.raises(ChannelNotFound):
        app.channels.tenant_slice("flags", "live", "initech")
    d = app.channels.deployment(app.channels.rows.deployments("flags")[0].id)
    assert d.run_status == RunStatus.SUCCEEDED and d.tenant == "globex"


async def wait_step(app: App, run_id: str, step: str, status: str, timeout: float = 20) -> None:
    def reached() -> bool:
        return {s.name: s.status for s in app.get_run(run_id).steps}[step] == status

    await eventually_async(reached, f"step {step} of run {run_id} {status}", timeout)


async def test_cancelling_a_deployment_flips_its_stages_back(app: App, worker: Worker) -> None:
    """Cancelled while prod waits for approval: beta and gamma go back, the deployment is
    FAILED with the reason, and the channel goes on with the next push."""
    app.channels.register(
        flags_channel(
            stages=[Stage("beta"), Stage("gamma"), Stage("prod", approval={"required": 1})]
        )
    )
    first = push(app, "acme", "first")
    await wait_step(app, first, "prod.approval", "WAITING")
    app.acting("alice").decide(first, "approve")
    assert await wait_done(app, [first]) == ["SUCCEEDED"]
    second = push(app, "acme", "second")
    third = push(app, "globex", "third")
    await wait_step(app, second, "prod.approval", "WAITING")
    assert {st.stage: st.version for st in app.channels.stages("flags")} == {
        "beta": 2,
        "gamma": 2,
        "prod": 1,
    }
    app.acting("ops").cancel_run(second)
    assert await wait_done(app, [second]) == ["CANCELLED"]
    cancelled = app.channels.deployment(app.channels.deployments("flags")[1].id)
    assert cancelled.run_id == second and cancelled.state == "FAILED"
    assert "cancel" in (cancelled.error or "")
    await wait_step(app, third, "prod.approval", "WAITING")
    assert {st.stage: st.version for st in app.channels.stages("flags")} == {
        "beta": 3,
        "gamma": 3,
        "prod": 1,
    }
    assert app.channels.manifest("flags", 3).parent == 1
    app.acting("alice").decide(third, "approve")
    assert await wait_done(app, [third]) == ["SUCCEEDED"]
