"""PostgreSQL goes away under a worker (an immediate restart, a server that is not there):
the worker backs off, comes back, and every run finishes without a completed step running
again; a lost connection is told apart from a refusal."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate import App, Pipeline, RunStatus, Settings, StepContext, step
from lockgate.errors import DatabaseUnavailable, StoreError
from lockgate.store.leases import Forsake
from lockgate.testing import PostgresServer, free_port

#: Every execution of a step: (run, step, when).
EXECUTED: list[tuple[str, str, float]] = []


def record(ctx: StepContext) -> None:
    EXECUTED.append((ctx.run_id, ctx.step, time.time()))


@step
async def one(ctx: StepContext) -> None:
    record(ctx)
    await asyncio.sleep(0.05)


@step(idempotent=False)
async def two(ctx: StepContext) -> None:
    record(ctx)
    await asyncio.sleep(0.05)


@step
async def three(ctx: StepContext) -> None:
    record(ctx)
    await asyncio.sleep(0.05)


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: it is restarted under load."""
    with PostgresServer(fsync=True) as pg:
        yield pg


async def test_a_worker_rides_out_an_immediate_restart(server: PostgresServer) -> None:
    url = server.create_database("outage")
    app = App(Settings(database_url=url, lease_seconds=2.0, poll_interval=0.05, concurrency=10))
    app.migrate()
    app.register(Pipeline("steady", [one, two, three]))
    EXECUTED.clear()
    ids = [app.start_run("steady").id for _ in range(60)]
    worker = app.worker()
    await worker.start()
    try:
        while len(EXECUTED) < 30:  # well under way
            await asyncio.sleep(0.01)
        restarted = threading.Thread(target=server.restart, args=("immediate",))
        restarted.start()
        while restarted.is_alive():
            await asyncio.sleep(0.05)
        back = time.monotonic()
        deadline = back + 60
        while time.monotonic() < deadline:
            try:
                if all(app.get_run(i).run.status == RunStatus.SUCCEEDED for i in ids):
                    break
            except StoreError:
                pass  # the test's own reads meet the restart too
            await asyncio.sleep(0.1)
        took = time.monotonic() - back
    finally:
        await worker.stop()
    statuses = {app.get_run(i).run.status for i in ids}
    assert statuses == {RunStatus.SUCCEEDED}
    # Not parked as engine errors for a minute: back to work as soon as it answers (the
    # runs dropped in flight are given back at once, not after their leases).
    assert took < 15, took
    for run_id in ids:
        completed = {e.step: e.at for e in app.events(run_id) if e.status == "COMPLETED"}
        for rid, name, at in EXECUTED:
            if rid == run_id and name in completed:
                assert at <= completed[name], f"{name} of {run_id} ran after it completed"
        runs_of_two = [x for x in EXECUTED if x[0] == run_id and x[1] == "two"]
        assert len(runs_of_two) <= 2  # at most once more, and then only if found in flight
    app.close()


def test_an_unreachable_server_is_unavailable_not_a_refusal(tmp_path: Path) -> None:
    """Nothing listening: reads and writes raise DatabaseUnavailable; a batch of ops is not
    retried op by op (it may have committed); a refusal stays a plain StoreError."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    app = App(Settings(database_url=url))
    with pytest.raises(DatabaseUnavailable, match="database read failed"):
        app.store.count_active()
    results = app.store.apply_batch([Forsake("w", []), Forsake("w", [])])
    assert [type(r) for r in results] == [DatabaseUnavailable, DatabaseUnavailable]
    app.close()


def test_a_refusal_is_not_unavailability(server: PostgresServer) -> None:
    app = App(Settings(database_url=server.create_database("refusal")))
    app.migrate()
    with pytest.raises(StoreError) as refused:
        app.store.write(lambda c: c.exec_driver_sql("SELECT * FROM no_such_table"))
    assert not isinstance(refused.value, DatabaseUnavailable)
    app.close()


def test_runs_dropped_while_out_of_reach_are_given_back(server: PostgresServer) -> None:
    """Forsake frees the runs a worker holds but no longer drives, with new tokens."""
    app = App(Settings(database_url=server.create_database("forsake")))
    app.migrate()
    app.register(Pipeline("steady", [one, two, three]))
    kept, dropped, other = (app.start_run("steady").id for _ in range(3))
    owners = {kept: "me", dropped: "me", other: "them"}
    for run_id, owner in owners.items():
        app.store.write(
            lambda c, r=run_id, o=owner: c.exec_driver_sql(
                "UPDATE runs SET lease_owner = %(o)s, lease_token = 5, lease_expires_at = "
                "extract(epoch from now()) + 60, status = 'RUNNING' WHERE id = %(r)s",
                {"o": o, "r": r},
            )
        )
    assert app.store.apply(Forsake("me", [kept])) == 1
    after = {r: app.get_run(r).run for r in owners}
    assert (after[dropped].lease_owner, after[dropped].lease_token) == (None, 6)
    assert (after[kept].lease_owner, after[kept].lease_token) == ("me", 5)
    assert after[other].lease_owner == "them"
    app.close()
