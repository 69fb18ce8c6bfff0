"""Guided failure: a step that failed for good waits for people to retry it, skip it or roll
the run back, holding no worker; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lockgate import (
    App,
    DefinitionError,
    InvalidState,
    ParamsError,
    Pipeline,
    RunStatus,
    StepContext,
    step,
)
from lockgate.errors import Forbidden
from lockgate.specs import load_file
from lockgate.testing import eventually_async

UNDONE: list[str] = []


@step
def prepare(ctx: StepContext) -> dict[str, int]:
    return {"n": 1}


@prepare.rollback
def unprepare(ctx: StepContext, value: dict[str, int]) -> None:
    UNDONE.append(ctx.run_id)


@step(on_failure="ask", skippable=True)
def flaky(ctx: StepContext, value: dict[str, int]) -> dict[str, int]:
    if ctx.attempt == 1:
        raise RuntimeError("the registry timed out")
    return {"n": value["n"] + 1}


@step
def finish(ctx: StepContext, value: dict[str, int]) -> dict[str, int]:
    return {"n": value["n"] * 10}


@step
def stubborn(ctx: StepContext) -> None:
    raise RuntimeError("always")


GUIDED = Pipeline("guided", [prepare, flaky, finish])
ASKS = Pipeline("asks", [prepare, stubborn], on_failure="ask")


async def waiting_for_decision(app: App, worker: object, run_id: str) -> None:
    worker.wake()  # type: ignore[attr-defined]

    def asking() -> bool:
        found = app.approval(run_id)
        return found is not None and found.approval.request.get("kind") == "failure"

    await eventually_async(asking, f"run {run_id} to ask what next", timeout=6)


async def finished(app: App, worker: object, run_id: str) -> RunStatus:
    worker.wake()  # type: ignore[attr-defined]
    return RunStatus((await app.wait(run_id, timeout=10)).status)


async def test_retry_runs_the_step_again_and_the_run_goes_on(app: App, worker: object) -> None:
    """The failed step parks the run (no lease held) asking retry, skip or rollback; a
    retry is a new attempt, and the run succeeds."""
    app.register(GUIDED)
    run = app.start_run("guided")
    await waiting_for_decision(app, worker, run.id)
    parked = app.run_record(run.id)
    assert (parked.status, parked.lease_owner) == ("WAITING", None)
    pending = app.approval(run.id)
    assert pending is not None
    assert pending.approval.request["choices"] == ["retry", "skip", "rollback"]
    assert "the registry timed out" in pending.approval.request["message"]
    result = app.acting("olga", ["operator"]).resolve(run.id, "retry", comment="flake")
    assert result.settled and result.outcome == "retry"
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED
    view = app.get_run(run.id)
    assert view.steps[-1].output == {"n": 20}
    assert [(a.step, a.attempt, a.outcome) for a in view.attempts if a.step == "flaky"] == [
        ("flaky", 1, "failed"),
        ("flaky", 2, "completed"),
    ]


async def test_skip_goes_on_without_the_step(app: App, worker: object) -> None:
    """A skippable step is skipped: its output is absent and the value flows on."""
    app.register(GUIDED)
    run = app.start_run("guided")
    await waiting_for_decision(app, worker, run.id)
    app.acting("olga", ["operator"]).resolve(run.id, "skip")
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED
    steps = {s.name: s for s in app.get_run(run.id).steps}
    assert steps["flaky"].status == "SKIPPED" and steps["flaky"].output is None
    assert steps["finish"].output == {"n": 10}


async def test_skipping_the_last_step_finishes_the_run(app: App, worker: object) -> None:
    """With no step left after the skipped one, the run succeeds (it once stayed RUNNING,
    its lease renewed, with nothing left to do)."""
    app.register(Pipeline("last-asks", [prepare, flaky]))
    run = app.start_run("last-asks")
    await waiting_for_decision(app, worker, run.id)
    app.acting("olga", ["operator"]).resolve(run.id, "skip")
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED
    view = app.get_run(run.id)
    assert [s.status for s in view.steps] == ["COMPLETED", "SKIPPED"]
    assert view.run.finished_at is not None and view.run.lease_owner is None
    statuses = [e.status for e in app.events(run.id) if e.step is None]
    assert statuses[-1] == "SUCCEEDED"


async def test_rollback_rolls_the_run_back(app: App, worker: object) -> None:
    """Rollback: the completed steps are undone, with the failure as the cause; a step
    that is not skippable cannot be skipped."""
    app.register(ASKS)
    run = app.start_run("asks")
    await waiting_for_decision(app, worker, run.id)
    with pytest.raises(ParamsError, match="action: one of retry, rollback"):
        app.acting("olga", ["operator"]).resolve(run.id, "skip")
    app.acting("olga", ["operator"]).resolve(run.id, "rollback")
    assert await finished(app, worker, run.id) is RunStatus.ROLLED_BACK
    assert run.id in UNDONE
    assert "always" in (app.run_record(run.id).error or "")


async def test_concurrent_decisions_one_wins_the_rest_are_refused(app: App, worker: object) -> None:
    """Eight people decide at once: exactly one decision settles the step; the others are
    refused (409) naming what was decided and by whom."""
    app.register(GUIDED)
    run = app.start_run("guided")
    await waiting_for_decision(app, worker, run.id)
    outcomes: list[object] = []
    gate = threading.Barrier(8)

    def decide(n: int) -> None:
        gate.wait()
        try:
            outcomes.append(app.acting(f"p{n}", ["operator"]).resolve(run.id, "retry"))
        except InvalidState as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settled = [o for o in outcomes if not isinstance(o, InvalidState)]
    refused = [o for o in outcomes if isinstance(o, InvalidState)]
    assert len(settled) == 1 and len(refused) == 7
    assert all(r.details["outcome"] == "retry" for r in refused)  # type: ignore[index]
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED


async def test_wrong_decisions_are_refused(app: App, worker: object) -> None:
    """An approval decision on a failed step, a resolution of a run that asks for none, a
    viewer's resolution: each refused with a clear error."""
    app.register(GUIDED)
    run = app.start_run("guided")
    await waiting_for_decision(app, worker, run.id)
    with pytest.raises(InvalidState, match="resolve it"):
        app.acting("ann", ["approver"]).decide(run.id, "approve")
    with pytest.raises(Forbidden):
        app.acting("vic", ["viewer"]).resolve(run.id, "retry")
    app.acting("olga", ["operator"]).resolve(run.id, "retry")
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED
    with pytest.raises(InvalidState, match=r"settled already \(retry by olga\)"):
        app.acting("olga", ["operator"]).resolve(run.id, "retry")
    app.register(Pipeline("plain", [prepare]))
    plain = app.start_run("plain")
    assert await finished(app, worker, plain.id) is RunStatus.SUCCEEDED
    with pytest.raises(InvalidState, match="no failed step of it waits"):
        app.acting("olga", ["operator"]).resolve(plain.id, "retry")


async def test_an_unanswered_failure_gets_its_timeout_outcome(app: App, worker: object) -> None:
    """No decision within decision_timeout: the configured outcome (here a retry) is done,
    settled by the timeout."""
    app.register(
        Pipeline(
            "patient",
            [prepare, flaky, finish],
            decision_timeout=0.5,
            on_decision_timeout="retry",
        )
    )
    run = app.start_run("patient")
    await waiting_for_decision(app, worker, run.id)
    assert await finished(app, worker, run.id) is RunStatus.SUCCEEDED
    settled = app.store.get_approval(run.id, "flaky@1")
    assert settled is not None and (settled.outcome, settled.settled_by) == ("retry", "timeout")
    with pytest.raises(DefinitionError, match="on_decision_timeout 'later'"):
        Pipeline("p", [prepare], on_decision_timeout="later")


def test_a_pipeline_file_asks_on_failure(tmp_path: Path) -> None:
    """``on_failure: ask`` on a pipeline and ``skippable`` on a step, in a file."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\non_failure: ask\ndecision_timeout: 60\non_decision_timeout: retry\nsteps:\n"
        "  - {name: a, kind: shell, argv: ['false'], skippable: true}\n"
        "  - {name: b, kind: shell, argv: ['true'], on_failure: rollback}\n"
    )
    pipeline = load_file(path)
    assert pipeline.asks_on_failure(pipeline.steps[0])
    assert not pipeline.asks_on_failure(pipeline.steps[1])
    assert pipeline.steps[0].skippable
    assert (pipeline.decision_timeout, pipeline.on_decision_timeout) == (60, "retry")
