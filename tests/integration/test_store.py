"""The store itself: migrations, wake-ups across processes, live logs, masking, leases."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import update

from lockgate import App, NotFound, Pipeline, RunStatus, Settings, StepContext, step
from lockgate.store import open_store, schema
from lockgate.store.deliveries import Deliver
from lockgate.store.leases import Heartbeat
from lockgate.store.migrate import _config, current, upgrade
from lockgate.store.runs import CreateRun
from lockgate.store.schema import metadata
from lockgate.testing import eventually_async


def test_migrations_produce_the_declared_schema(db_url: str) -> None:
    """``alembic upgrade head`` yields exactly the tables and indexes of schema.py."""
    store = open_store(db_url)
    try:
        upgrade(store)  # idempotent: running it again changes nothing
        head = ScriptDirectory.from_config(_config()).get_current_head()
        assert current(store) == head
        with store._reader_engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        store.close()


async def test_log_lines_are_visible_while_the_step_runs(app: App, worker: object) -> None:
    """A running step's log lines reach the store before the step finishes (live logs)."""
    release = asyncio.Event()

    @step
    async def chatty(ctx: StepContext) -> None:
        ctx.log.info("first line")
        await release.wait()
        ctx.log.info("last line")

    app.register(Pipeline("chatty", [chatty]))
    record = app.start_run("chatty")
    worker.wake()  # type: ignore[attr-defined]
    await eventually_async(lambda: app.logs(record.id), "the first log line", 10)
    assert [line.message for line in app.logs(record.id)] == ["first line"]
    assert app.get_run(record.id).steps[0].status == "RUNNING"
    release.set()
    await app.wait(record.id, timeout=10)
    assert [line.message for line in app.logs(record.id)] == ["first line", "last line"]


async def test_secrets_are_masked_in_logs_errors_and_run_error(settings: Settings) -> None:
    """Secret values never reach the store: logs, errors and the run's error are masked."""
    app = App(settings.with_(secrets={"TOKEN": "s3cr3t-value"}))

    @step
    def leaky(ctx: StepContext) -> None:
        ctx.log.info("calling with token s3cr3t-value")
        raise RuntimeError("auth failed for s3cr3t-value")

    app.register(Pipeline("leaky", [leaky]))
    try:
        done = await app.execute_async("leaky")
        assert done.status == RunStatus.FAILED
        texts = [line.message for line in app.logs(done.id)]
        texts += [e.message + (e.traceback or "") for e in app.errors(done.id)]
        texts += [done.error or "", app.get_run(done.id).steps[0].error or ""]
        texts += [e.message or "" for e in app.events(done.id)]
        assert all("s3cr3t-value" not in t for t in texts)
        assert "calling with token ***" in texts
    finally:
        app.close()


async def test_params_that_no_longer_decode_fail_the_run(app: App, worker: object) -> None:
    """A run whose stored params do not fit the pipeline's params type fails cleanly."""
    from pydantic import BaseModel

    class Strict(BaseModel):
        count: int

    @step
    def use(ctx: StepContext, p: Strict) -> None:
        pass

    pipeline = Pipeline("strict", [use], params=Strict)
    app.register(pipeline)
    bad = CreateRun(
        run_id="badparams0000000000000000000",
        namespace="default",
        pipeline="strict",
        version=pipeline.version,
        step_names=["use"],
        params={"count": "many"},
        noop=False,
        requested_by=None,
        idempotency_key=None,
    )
    record, _ = app.store.apply(bad)
    worker.wake()  # type: ignore[attr-defined]
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert "params refused" in (done.error or "")


async def test_a_worker_that_lost_its_lease_abandons_the_run(settings: Settings) -> None:
    """When a heartbeat finds the lease taken, the worker stops driving that run."""
    app = App(settings.with_(lease_seconds=0.3))
    started = asyncio.Event()
    runs: list[str] = []

    @step
    async def hold(ctx: StepContext) -> None:
        runs.append(ctx.run_id)
        started.set()
        await asyncio.sleep(60)

    app.register(Pipeline("hold", [hold]))
    w = app.worker()
    await w.start()
    try:
        record = app.start_run("hold")
        w.wake()
        await asyncio.wait_for(started.wait(), 10)
        # Another worker takes over (as if this one had paused past its lease).
        app.store.write(
            lambda c: c.exec_driver_sql(
                "UPDATE runs SET lease_owner = 'thief', lease_token = lease_token + 1"
            )
        )
        await eventually_async(lambda: w.active == 0, "the worker to let the run go", 5)
        assert app.get_run(record.id).run.lease_owner == "thief"
    finally:
        await w.stop()
        app.close()


@step
def noop(ctx: StepContext) -> None:
    pass


def test_a_heartbeat_reports_lost_leases_not_runs_that_finished(app: App) -> None:
    """A run taken by another worker, or let go while unfinished, is lost; one whose last
    commit let go of its lease since the worker looked is not (no false alarm)."""
    app.register(Pipeline("p", [noop]))
    taken, finished, let_go, held = (app.start_run("p").id for _ in range(4))
    owners = {taken: "thief", finished: None, let_go: None, held: "me"}
    for run_id, owner in owners.items():
        status = "SUCCEEDED" if run_id == finished else "RUNNING"
        app.store.write(
            lambda c, r=run_id, o=owner, st=status: c.execute(
                update(schema.runs)
                .where(schema.runs.c.id == r)
                .values(lease_owner=o, status=st, lease_expires_at=time.time() + 30)
            )
        )
    lost = app.store.apply(Heartbeat("me", list(owners), 30))
    assert lost == {taken, let_go}


async def test_postgres_notify_wakes_a_worker_in_another_process(pg_server: object) -> None:
    """On PostgreSQL a run started elsewhere is picked up at once, not at the next poll."""
    url = pg_server.create_database(template="lockgate_template")  # type: ignore[attr-defined]
    settings = Settings(database_url=url, poll_interval=30.0)

    @step
    def noop(ctx: StepContext) -> None:
        pass

    pipeline = Pipeline("notified", [noop])
    here, elsewhere = App(settings, pipelines=[pipeline]), App(settings, pipelines=[pipeline])
    w = here.worker()
    await w.start()
    try:
        await asyncio.sleep(0.5)  # the first (empty) claim has happened; next poll in 30 s
        started = time.monotonic()
        record = elsewhere.start_run("notified")
        done = await here.wait(record.id, timeout=10)
        assert done.status == RunStatus.SUCCEEDED
        assert time.monotonic() - started < 3
    finally:
        await w.stop()
        here.close()
        elsewhere.close()


def test_deliveries_in_one_batch(app: App) -> None:
    """Many deliveries share one transaction and a few statements: each stored once, a key
    repeated within the batch answered as a duplicate, a deleted trigger's refused with
    nothing written, and a run key used before pointing at the run it started."""

    @step
    def noop(ctx: StepContext) -> None:
        return None

    app.register(Pipeline("p", [noop]))
    live = app.webhooks.create(provider="generic", pipeline="p", secret="s" * 32)
    gone = app.webhooks.create(provider="generic", pipeline="p", secret="s" * 32)
    app.webhooks.delete(gone.id)
    earlier = app.start_run("p", idempotency_key="delivery:reused")

    def deliver(trigger: str, key: str, run_key: str | None = None) -> Deliver:
        create = app.launcher.prepare_run(
            "p", idempotency_key=run_key or f"delivery:{trigger}:{key}"
        )
        return Deliver(trigger, key, {"n": key}, {"body": key}, create, "DONE")

    ops = [
        deliver(live.id, "a"),
        deliver(gone.id, "x"),
        deliver(live.id, "b"),
        deliver(live.id, "a"),  # the same key again, in the same batch
        deliver(live.id, "c", run_key="delivery:reused"),
    ]
    a, x, b, again, c = app.store.apply_batch(ops)
    assert isinstance(x, NotFound)
    assert a[3] and b[3] and c[3] and not again[3]
    assert again[0] == a[0] and again[2] == a[2] and len(a[2]) == 1
    assert c[2] == [earlier.id]  # the run key had started a run before
    stored = {d.key: d for d in app.deliveries.list(live.id)}
    assert set(stored) == {"a", "b", "c"} and stored["c"].run_ids == [earlier.id]
    assert stored["a"].payload == {"body": "a"} and stored["a"].attempts == 1
    assert app.webhooks.rows.deliveries(gone.id) == []
    runs = app.list_runs()
    assert len(runs) == 3 and all(len(app.get_run(r.id).steps) == 1 for r in runs)
    # The same deliveries again, each in a batch of its own: all duplicates now.
    for op, first in zip([ops[0], ops[2]], [a, b], strict=True):
        assert app.store.apply(op)[:3] == (first[0], "DONE", first[2])


def test_upgrading_wakes_runs_parked_for_decisions(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A run parked at an approval before approvals stored their requests (revision 0010)
    is woken by the upgrade, so that its step asks again and stores its request."""
    if db_url.startswith("sqlite"):  # the fixture's database is at head: make an older one
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    for step_ in ("0010", "insert", "head"):
        store = open_store(url)  # one store each: the writer connection is not shared
        try:
            if step_ == "insert":
                store.write(
                    lambda c: c.exec_driver_sql(
                        "INSERT INTO runs (id, namespace, pipeline, version, status, params, "
                        "context, noop, cancel_requested, lease_token, created_at, updated_at) "
                        "VALUES ('parked', 'default', 'p', 'v', 'WAITING', '{}', '{}', false, "
                        "false, 0, 1, 1)"
                    )
                )
            else:
                upgrade(store, step_)
        finally:
            store.close()
    store = open_store(url)
    try:
        assert store.get_run("parked").wake_at is not None
    finally:
        store.close()
