"""Crash recovery: leases, fencing, in-flight steps, resumed rollbacks, version pinning."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from lockgate import App, Pipeline, RunStatus, Settings, StaleLease, StepContext, step
from lockgate.store.checkpoints import Checkpoint
from lockgate.store.leases import Claim
from lockgate.testing import eventually_async


class Build(BaseModel):
    tag: str
    layers: list[int]


@pytest.fixture
def fast_lease(settings: Settings) -> Settings:
    """Leases that expire quickly, so a 'dead' worker's runs are reclaimed fast."""
    return settings.with_(lease_seconds=0.4)


async def crash_during(app: App, started: asyncio.Event) -> None:
    """Start a worker, wait for ``started``, then kill it like a dying process."""
    w = app.worker()
    await w.start()
    w.wake()
    await asyncio.wait_for(started.wait(), 10)
    await w.kill()


async def finish(app: App, run_id: str) -> Any:
    w = app.worker()
    await w.start()
    try:
        return await app.wait(run_id, timeout=20)
    finally:
        await w.stop()


async def test_in_flight_idempotent_step_reruns_with_the_same_key(fast_lease: Settings) -> None:
    """A step running when its worker died runs again, with the same idempotency key;
    the completed step before it never runs again and its output is decoded back."""
    app = App(fast_lease)
    calls: list[tuple[str, int, str]] = []
    started = asyncio.Event()
    release = threading.Event()

    @step
    def build(ctx: StepContext) -> Build:
        calls.append(("build", ctx.attempt, ctx.idempotency_key))
        return Build(tag="v1", layers=[1, 2])

    @step
    async def push(ctx: StepContext, b: Build) -> Build:
        calls.append(("push", ctx.attempt, ctx.idempotency_key))
        assert isinstance(b, Build)
        if not release.is_set():
            started.set()
            await asyncio.sleep(60)
        return b

    app.register(Pipeline("rebuild", [build, push]))
    try:
        record = app.start_run("rebuild")
        await crash_during(app, started)
        release.set()
        done = await finish(app, record.id)
        assert done.status == RunStatus.SUCCEEDED
        assert [c[0] for c in calls] == ["build", "push", "push"]
        assert calls[1][2] == calls[2][2] == f"{record.id}/push"
        assert app.get_run(record.id).steps[1].output == {"tag": "v1", "layers": [1, 2]}
    finally:
        app.close()


async def test_in_flight_non_idempotent_step_is_not_rerun(fast_lease: Settings) -> None:
    """A step marked idempotent=False found in flight fails as interrupted and rolls back."""
    app = App(fast_lease)
    calls: list[str] = []
    started = asyncio.Event()

    @step
    def reserve(ctx: StepContext) -> None:
        calls.append("reserve")

    @reserve.rollback
    def unreserve(ctx: StepContext) -> None:
        calls.append("unreserve")

    @step(idempotent=False)
    async def charge(ctx: StepContext) -> None:
        calls.append("charge")
        started.set()
        await asyncio.sleep(60)

    @charge.rollback
    def refund(ctx: StepContext) -> None:
        calls.append("refund")

    app.register(Pipeline("payment", [reserve, charge]))
    try:
        record = app.start_run("payment")
        await crash_during(app, started)
        done = await finish(app, record.id)
        assert done.status == RunStatus.ROLLED_BACK
        assert calls == ["reserve", "charge", "refund", "unreserve"]
        charge_rec = app.get_run(record.id).steps[1]
        assert charge_rec.status == "ROLLED_BACK"
        assert "idempotent=False" in (charge_rec.error or "")
    finally:
        app.close()


async def test_crash_inside_rollback_resumes_the_rollback(fast_lease: Settings) -> None:
    """Finished rollbacks are checkpointed: after a crash only the unfinished ones run."""
    app = App(fast_lease)
    calls: list[str] = []
    in_rollback = asyncio.Event()
    release = threading.Event()

    @step
    def first(ctx: StepContext) -> None:
        calls.append("first")

    @first.rollback
    async def undo_first(ctx: StepContext) -> None:
        calls.append("undo_first")
        if not release.is_set():
            in_rollback.set()
            await asyncio.sleep(60)

    @step
    def second(ctx: StepContext) -> None:
        calls.append("second")

    @second.rollback
    def undo_second(ctx: StepContext) -> None:
        calls.append("undo_second")

    @step
    def third(ctx: StepContext) -> None:
        raise RuntimeError("third failed")

    app.register(Pipeline("resume-rollback", [first, second, third]))
    try:
        record = app.start_run("resume-rollback")
        await crash_during(app, in_rollback)
        assert app.get_run(record.id).run.status == RunStatus.ROLLING_BACK
        release.set()
        done = await finish(app, record.id)
        assert done.status == RunStatus.ROLLED_BACK
        assert calls == ["first", "second", "undo_second", "undo_first", "undo_first"]
    finally:
        app.close()


async def test_stale_worker_write_is_refused(app: App) -> None:
    """After another worker reclaims an expired lease, the old token's writes fail."""

    @step
    def noop(ctx: StepContext) -> None:
        pass

    app.register(Pipeline("fenced", [noop]))
    record = app.start_run("fenced")
    [old] = app.store.apply(Claim("old-worker", app.registry.versions(), 10, lease_seconds=0.05))
    await asyncio.sleep(0.1)
    [new] = app.store.apply(Claim("new-worker", app.registry.versions(), 10, lease_seconds=30))
    assert new.run.lease_token == old.run.lease_token + 1
    with pytest.raises(StaleLease):
        app.store.apply(Checkpoint(record.id, old.run.lease_token, run={"status": "SUCCEEDED"}))
    app.store.apply(Checkpoint(record.id, new.run.lease_token, run={"current_step": "noop"}))
    assert app.get_run(record.id).run.status == RunStatus.PENDING
    assert app.store.apply(Claim("third", app.registry.versions(), 10, lease_seconds=30)) == []


async def test_a_run_resumes_with_the_version_it_started_with(settings: Settings) -> None:
    """A run keeps its pipeline version; one whose version is not registered is flagged."""
    calls: list[str] = []

    @step(name="deploy")
    def deploy_v1(ctx: StepContext) -> None:
        calls.append("v1")

    @step(name="deploy")
    def deploy_v2(ctx: StepContext) -> None:
        calls.append("v2")

    v1 = Pipeline("pinned", [deploy_v1])
    v2 = Pipeline("pinned", [deploy_v2])
    assert v1.version != v2.version
    old = App(settings)
    old.register(v1)
    record = old.start_run("pinned")
    old.close()

    new = App(settings)
    new.register(v2)
    w = new.worker()
    await w.start()
    try:
        flagged = await eventually_async(
            lambda: (run := new.get_run(record.id).run).flag and run, "the run to be flagged"
        )
        assert flagged.status == RunStatus.PENDING
        assert flagged.flag == f"pipeline version {v1.version} is not registered"
    finally:
        await w.stop()
    new.registry.add(v1)
    done = await finish(new, record.id)
    assert done.status == RunStatus.SUCCEEDED and done.flag is None
    assert calls == ["v1"]
    new.close()


async def test_a_parked_run_outlives_its_worker(fast_lease: Settings) -> None:
    """A run sleeping in the store is resumed on time by a worker that never saw it park."""
    app = App(fast_lease)
    parked = asyncio.Event()

    @step
    def nap(ctx: StepContext) -> None:
        if ctx.wait_until is None:
            parked.set()
        ctx.sleep(0.8)

    app.register(Pipeline("nap", [nap]))
    try:
        record = app.start_run("nap")
        first = app.worker()
        await first.start()
        first.wake()
        await asyncio.wait_for(parked.wait(), 10)
        await asyncio.sleep(0.1)
        await first.kill()
        assert app.get_run(record.id).run.status == RunStatus.WAITING
        done = await finish(app, record.id)
        assert done.status == RunStatus.SUCCEEDED
        assert done.finished_at is not None and done.finished_at >= record.created_at + 0.8
    finally:
        app.close()


async def test_worker_identities_are_stable_and_never_shared(app: App) -> None:
    """A worker's identity is stable (the host and the database by default); a second live
    worker takes ``-2``; a stopped worker's identity is free for its next incarnation."""
    first, second = app.worker(), app.worker()
    await first.start()
    await second.start()
    try:
        assert second.id == f"{first.id}-2"
        assert first.id == first.name
    finally:
        await second.stop()
    again = app.worker()
    await again.start()
    try:
        assert again.id == second.id
    finally:
        await again.stop()
        await first.stop()


async def test_a_worker_takes_back_its_own_runs_at_once(app: App) -> None:
    """Runs leased to this identity by an earlier incarnation (its heartbeat stale or its
    process gone) are taken back with a new fencing token, not left to their leases."""
    gate = asyncio.Event()

    @step
    async def hold(ctx: StepContext) -> None:
        if ctx.attempt == 1:
            await gate.wait()

    app.register(Pipeline("held", [hold]))
    dead = app.worker(lease_seconds=600.0, worker_name="host-a")
    await dead.start()
    run = app.start_run("held")
    while app.get_run(run.id).run.lease_owner != "host-a":
        await asyncio.sleep(0.01)
    token = app.get_run(run.id).run.lease_token
    await dead.kill()  # as if the process died: its 600 s lease stays
    app.store.write(
        lambda c: c.exec_driver_sql("UPDATE workers SET heartbeat_at = 0 WHERE id = 'host-a'")
    )
    reborn = app.worker(lease_seconds=600.0, worker_name="host-a")
    await reborn.start()
    try:
        assert reborn.id == "host-a"
        done = await app.wait(run.id, timeout=10)
        assert done.status == RunStatus.SUCCEEDED and done.lease_token > token
        attempts = [(a.attempt, a.outcome) for a in app.get_run(run.id).attempts]
        assert attempts == [(1, "lost"), (2, "completed")]
    finally:
        await reborn.stop()
