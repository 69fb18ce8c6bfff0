"""Operating a channel's stages: a stage rolled back to an earlier manifest (a deployment
like any other: its turn, approval, flip, test, flip-back on failure), and pinned stages that
stop promotions; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from lockgate import App, Channel, ChannelNotFound, ParamsError, PushRequest, Stage
from lockgate.channels.model import Deployment
from lockgate.engine.worker import Worker


class Flags(BaseModel):
    values: list[str]


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    return {"values": [*manifest.get("values", []), *request.content.values]}


def prod_test(d: Deployment) -> None:
    if "broken" in d.manifest.get("values", []):
        raise AssertionError("prod smoke test failed")


def channel() -> Channel:
    return Channel(
        "flags",
        merge=merge,
        request=Flags,
        stages=[Stage("beta"), Stage("gamma"), Stage("prod", test=prod_test)],
        queue_poll=0.2,
    )


async def deploy(app: App, values: list[str]) -> str:
    d = app.acting("t").channels.push("flags", "acme", {"values": values})
    return (await app.wait(d.run_id, timeout=30)).status


def serving(app: App) -> dict[str, int | None]:
    return {s.stage: s.version for s in app.channels.stages("flags")}


async def test_a_stage_goes_back_to_an_earlier_manifest(app: App, worker: Worker) -> None:
    """Rolling prod back to version 1 flips prod alone, through its test; the head stays at
    version 2, so the next push merges onto it. A rollback to a manifest whose prod test
    fails is flipped back and fails; unknown stages and versions are refused."""
    app.channels.register(channel())
    assert await deploy(app, ["a"]) == "SUCCEEDED"
    assert await deploy(app, ["b"]) == "SUCCEEDED"
    assert serving(app) == {"beta": 2, "gamma": 2, "prod": 2}
    back = app.acting("olga").channels.rollback_stage("flags", "prod", 1)
    assert (await app.wait(back.run_id, timeout=30)).status == "SUCCEEDED"
    assert serving(app) == {"beta": 2, "gamma": 2, "prod": 1}
    assert app.channels.record("flags").head_version == 2
    flips = app.channels.flips("flags", "prod")
    assert (flips[0].from_version, flips[0].to_version) == (2, 1)
    steps = {s.name: s.status for s in app.get_run(back.run_id).steps}
    assert steps["prod.test"] == "COMPLETED"
    assert await deploy(app, ["c"]) == "SUCCEEDED"
    assert app.channels.stage_manifest("flags", "prod").data() == {"values": ["a", "b", "c"]}

    assert await deploy(app, ["broken"]) == "ROLLED_BACK"  # prod's test refused it
    bad = app.channels.history("flags", limit=1)[0].version
    again = app.acting("olga").channels.rollback_stage("flags", "prod", bad)
    assert (await app.wait(again.run_id, timeout=30)).status == "ROLLED_BACK"
    assert serving(app)["prod"] == 3  # flipped back: it serves what it did before
    with pytest.raises(ParamsError, match="stage: 'nope' is not one of beta, gamma, prod"):
        app.channels.rollback_stage("flags", "nope", 1)
    with pytest.raises(ChannelNotFound):
        app.channels.rollback_stage("flags", "prod", 99)
    audited = [e for e in app.store.get_audit(0) if e.action == "channel.rollback"]
    assert [(e.actor, e.details["version"]) for e in audited] == [("olga", 1), ("olga", bad)]


async def test_a_pinned_stage_stops_promotions_until_unpinned(app: App, worker: Worker) -> None:
    """Pinning gamma: a push still flips beta, passes gamma and prod over, and succeeds;
    unpinned, the next push reaches every stage."""
    app.channels.register(channel())
    assert await deploy(app, ["a"]) == "SUCCEEDED"
    pinned = app.acting("olga").channels.pin("flags", "gamma")
    assert pinned.pinned
    assert await deploy(app, ["b"]) == "SUCCEEDED"
    assert serving(app) == {"beta": 2, "gamma": 1, "prod": 1}
    assert app.channels.record("flags").head_version == 2
    assert not app.acting("olga").channels.unpin("flags", "gamma").pinned
    assert await deploy(app, ["c"]) == "SUCCEEDED"
    assert serving(app) == {"beta": 3, "gamma": 3, "prod": 3}
    with pytest.raises(ChannelNotFound):
        app.channels.pin("flags", "nope")
    actions = [e.action for e in app.store.get_audit(0) if e.action.startswith("channel.")]
    assert actions.count("channel.pin") == 1 and actions.count("channel.unpin") == 1
