"""Retention: finished runs past their keep time are pruned in batches, with what hangs off
them; the newest of each pipeline always stay; on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from api_support import Served
from sqlalchemy import func, select, update

from lockgate import App, Pipeline, StepContext, step
from lockgate.engine.retention import Retention
from lockgate.store import schema as s

DAY = 86400.0


@step
def fine(ctx: StepContext) -> None:
    ctx.log.info("ok")


@step
def breaks(ctx: StepContext) -> None:
    raise RuntimeError("no")


def backdate(app: App, run_ids: list[str], days: float) -> None:
    at = time.time() - days * DAY
    app.store.write(
        lambda c: c.execute(
            update(s.runs).where(s.runs.c.id.in_(run_ids)).values(created_at=at, finished_at=at)
        )
    )


def rows(app: App, table: object, run_ids: list[str]) -> int:
    stmt = select(func.count()).where(table.c.run_id.in_(run_ids))  # type: ignore[attr-defined]
    return int(app.store.read(lambda c: c.execute(stmt).scalar()))


async def test_old_runs_go_in_batches_and_the_newest_stay(app: App) -> None:
    app.register(Pipeline("p", [fine]), Pipeline("f", [breaks]))
    ok = [(await app.execute_async("p")).id for _ in range(6)]
    bad = [(await app.execute_async("f")).id for _ in range(3)]
    backdate(app, ok[:4], 3)  # past the 1 day of succeeded runs
    backdate(app, bad[:1], 3)  # past the 2 days of failed ones
    backdate(app, bad[1:2], 1.5)  # within them
    settings = app.settings.with_(
        retain_succeeded_days=1, retain_failed_days=2, retain_last=2, prune_batch=2
    )
    retention = Retention(app.store, settings, app.metrics)
    assert retention.prune(dry_run=True) == {"SUCCEEDED": 4, "FAILED": 1}
    assert len(app.list_runs(limit=100)) == 9  # a dry run deletes nothing
    batches: list[int] = []
    gone = retention.acting("ops").prune(progress=lambda g: batches.append(sum(g.values())))
    assert gone == {"SUCCEEDED": 4, "FAILED": 1}
    assert batches == [2, 4, 5]  # two at a time
    left = {r.id for r in app.list_runs(limit=100)}
    assert left == set(ok[4:]) | set(bad[1:])
    pruned = ok[:4] + bad[:1]
    for table in (s.steps, s.events, s.step_logs, s.run_errors):
        assert rows(app, table, pruned) == 0
    assert rows(app, s.steps, ok[4:]) == 2
    assert b'lockgate_runs_pruned_total{status="SUCCEEDED"} 4.0' in app.metrics.render()
    audit = [e for e in app.store.get_audit(0) if e.action == "runs.prune"]
    assert [(e.actor, e.details) for e in audit] == [("ops", {"SUCCEEDED": 4, "FAILED": 1})]
    assert retention.prune() == {}
    forever = Retention(app.store, settings.with_(retain_succeeded_days=0, retain_failed_days=0))
    backdate(app, ok[4:], 400)
    assert forever.prune(dry_run=True) == {}


async def test_prune_over_rest_is_an_admins(served: Served) -> None:
    async with served.client("admin") as admin:
        answer = await admin.post("/api/v1/prune", json={"dry_run": True})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"dry_run": True, "runs": {}, "total": 0}
    async with served.client("operator") as op:
        assert (await op.post("/api/v1/prune")).status_code == 403


async def test_paced_batches_commit_lazily_and_leave_the_writer_durable(app: App) -> None:
    """Retention's deletes skip the wait for the disk (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit=off``) for their own transactions only, and pause
    between batches in proportion to how long each took."""
    app.register(Pipeline("p", [fine]))
    ids = [(await app.execute_async("p")).id for _ in range(4)]
    backdate(app, ids, 40)
    settings = app.settings.with_(retain_last=0, prune_batch=2, prune_share=0.5)
    retention = Retention(app.store, settings, app.metrics)
    assert retention.share() == 0.5
    show = "PRAGMA synchronous" if app.store.dialect == "sqlite" else "SHOW synchronous_commit"
    before = app.store.write(lambda c: c.exec_driver_sql(show).scalar())
    t0 = time.perf_counter()
    assert retention.prune(paced=True) == {"SUCCEEDED": 4}
    assert time.perf_counter() - t0 >= 2 * 0.05  # the least pause after each batch
    assert rows(app, s.steps, ids) == 0
    # The writer is as durable as before for the engine's own commits (SQLite: FULL).
    assert app.store.write(lambda c: c.exec_driver_sql(show).scalar()) == before
    assert app.store.read(lambda c: c.exec_driver_sql(show).scalar()) == before
    if app.store.dialect == "sqlite":
        assert before == 2
    assert Retention(app.store, app.settings.with_(prune_share=None)).share() == (
        0.05 if app.store.concurrent_writers else 0.01
    )
