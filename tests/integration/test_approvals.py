"""Approval steps end to end: N-of-M, who may decide, rejects, timeouts, typed input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from api_support import wait_status

from lockgate import App, Conflict, InvalidState, ParamsError, RunNotFound, RunStatus
from lockgate.engine.worker import Worker
from lockgate.errors import Forbidden
from lockgate.specs import load_file


def register(app: App, tmp_path: Path, approval: str, before: str = "") -> str:
    text = f"""
name: gated
steps:
{before}
  - name: sign-off
    kind: approval
{approval}
  - name: after
    kind: shell
    argv: [echo, "approved with ${{steps.sign-off.input}}"]
"""
    path = tmp_path / "gated.yaml"
    path.write_text(text)
    app.register(load_file(path))
    return "gated"


async def test_two_of_three_approvals_with_typed_input(
    app: App, worker: Worker, tmp_path: Path
) -> None:
    """The run waits, holding no worker, until enough approvers decide; input is the output."""
    register(
        app,
        tmp_path,
        """    message: Ship it?
    approvers: {users: [alice, bob, carol]}
    required: 2
    input:
      ticket: {type: string, required: true, pattern: "^CHG-[0-9]+$"}
      window: {type: integer, default: 30}""",
    )
    run = app.acting("dave").start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    assert worker.active == 0
    [pending] = app.approvals()
    assert pending.approval.step == "sign-off" and pending.policy.required == 2
    with pytest.raises(ParamsError) as info:
        app.acting("alice").decide(run.id, "approve", input={"ticket": "nope", "extra": 1})
    assert info.value.problems == [
        "ticket: String should match pattern '^CHG-[0-9]+$'",
        "extra: Extra inputs are not permitted",
    ]
    first = app.acting("alice").decide(run.id, "approve", comment="lgtm", input={"ticket": "CHG-1"})
    assert first.decision.by == "alice" and first.decision.comment == "lgtm"
    assert first.decision.at > 0 and not first.settled and first.outcome is None
    await asyncio.sleep(0.3)
    assert app.get_run(run.id).run.status == RunStatus.WAITING
    with pytest.raises(Conflict, match="alice already decided"):
        app.acting("alice").decide(run.id, "approve", input={"ticket": "CHG-1"})
    second = app.acting("bob").decide(run.id, "approve", input={"ticket": "CHG-2", "window": 10})
    assert second.settled and second.outcome == "approved"
    done = await app.wait(run.id, timeout=10)
    assert done.status == RunStatus.SUCCEEDED
    output = app.get_run(run.id).steps[0].output
    assert output["approved_by"] == ["alice", "bob"]
    assert output["input"] == {"ticket": "CHG-2", "window": 10}
    assert output["comments"] == ["lgtm"]
    decisions = [e.message for e in app.events(run.id) if e.status == "DECISION"]
    assert decisions == ["approve by alice: lgtm", "approve by bob (settles the step: approved)"]


async def test_who_may_decide(app: App, worker: Worker, tmp_path: Path) -> None:
    """Outsiders are refused; a role qualifies; the requester may not approve their own run."""
    register(app, tmp_path, "    approvers: {roles: [approver], users: [alice]}")
    run = app.acting("alice").start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    with pytest.raises(Forbidden, match="mallory may not decide"):
        app.acting("mallory").decide(run.id, "approve")
    with pytest.raises(Forbidden, match=r"alice requested run .* and may not approve it"):
        app.acting("alice").decide(run.id, "approve")
    app.acting("erin", ["viewer", "approver"]).decide(run.id, "approve")
    assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED


async def test_self_approval_when_allowed(app: App, worker: Worker, tmp_path: Path) -> None:
    """``allow_self_approval: true`` lets the requester approve."""
    register(app, tmp_path, "    allow_self_approval: true")
    run = app.acting("alice").start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    app.acting("alice").decide(run.id, "approve")
    assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED


async def test_reject_rolls_back(app: App, worker: Worker, tmp_path: Path) -> None:
    """A reject fails the step; earlier steps roll back; later decisions are refused."""
    marker = tmp_path / "undone"
    before = f"""  - name: reserve
    kind: shell
    argv: [echo, reserved]
    rollback:
      kind: shell
      argv: [touch, "{marker}"]"""
    register(app, tmp_path, "    required: 2", before=before)
    run = app.start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    app.acting("bob").decide(run.id, "reject", comment="not today")
    done = await app.wait(run.id, timeout=10)
    assert done.status == RunStatus.ROLLED_BACK
    assert "rejected by bob: not today" in (done.error or "")
    assert marker.exists()
    with pytest.raises(Conflict, match=r"settled already \(rejected by bob\)") as info:
        app.acting("carol").decide(run.id, "approve")
    assert info.value.details["outcome"] == "rejected"


@pytest.mark.parametrize(
    ("on_timeout", "status"),
    [("fail", RunStatus.FAILED), ("approve", RunStatus.SUCCEEDED)],
)
async def test_timeout_outcomes(
    app: App, worker: Worker, tmp_path: Path, on_timeout: str, status: str
) -> None:
    """With no decision in time, the step fails or is approved, as configured."""
    register(app, tmp_path, f"    expires_after: 0.4\n    on_timeout: {on_timeout}")
    run = app.start_run("gated")
    done = await app.wait(run.id, timeout=10)
    assert done.status == status
    if on_timeout == "approve":
        assert app.get_run(run.id).steps[0].output["timed_out"] is True
    else:
        assert "no decision within 0.4s" in (app.get_run(run.id).steps[0].error or "")


async def test_timeout_wait_keeps_waiting(app: App, worker: Worker, tmp_path: Path) -> None:
    """``on_timeout: wait`` keeps the run waiting past the expiry, until someone decides."""
    register(app, tmp_path, "    expires_after: 0.2\n    on_timeout: wait")
    run = app.start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    await asyncio.sleep(0.6)
    parked = app.get_run(run.id).run
    assert parked.status == RunStatus.WAITING and parked.wake_at is None
    app.acting("ops").decide(run.id, "approve")
    assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED


async def test_decisions_on_runs_that_are_not_waiting_are_refused(
    app: App, worker: Worker, tmp_path: Path
) -> None:
    """Unknown runs, cancelled runs and non-approval steps refuse decisions clearly."""
    register(app, tmp_path, "    required: 1")
    with pytest.raises(RunNotFound):
        app.acting("ops").decide("no-such-run", "approve")
    run = app.start_run("gated")
    await wait_status(app, run.id, RunStatus.WAITING)
    with pytest.raises(ParamsError, match="approve or reject"):
        app.acting("ops").decide(run.id, "maybe")
    with pytest.raises(InvalidState, match="'after' asked for none"):
        app.acting("ops").decide(run.id, "approve", step="after")
    app.cancel_run(run.id)
    with pytest.raises(InvalidState, match=r"being cancelled|CANCELLED"):
        app.acting("ops").decide(run.id, "approve")
    done = await app.wait(run.id, timeout=10)
    assert done.status == RunStatus.CANCELLED
    with pytest.raises(InvalidState, match="CANCELLED"):
        app.acting("ops").decide(run.id, "approve")
    assert app.approvals() == []


async def test_one_decision_on_many_runs(app: App, worker: Worker, tmp_path: Path) -> None:
    """A bulk decision answers each run on its own: waiting runs are decided in one
    transaction; an unknown run, a settled step, a forbidden approver, a quorum not yet
    reached and a repeated decision each get their own answer without holding up the rest."""
    register(app, tmp_path, "    approvers: {users: [alice, bob]}\n    required: 1")
    runs = [app.acting("dave").start_run("gated") for _ in range(5)]
    mine = app.acting("alice").start_run("gated")
    for run in [*runs, mine]:
        await wait_status(app, run.id, RunStatus.WAITING)
    app.acting("bob").decide(runs[0].id, "reject")
    commits = app.store.commits
    ids = [r.id for r in runs] + ["no-such-run", mine.id]
    answers = app.acting("alice").decide_many(ids, "approve", comment="release train")
    assert app.store.commits == commits + 1  # one transaction for all of them
    assert isinstance(answers[0], InvalidState) and "rejected by bob" in answers[0].message
    for answer, run in zip(answers[1:5], runs[1:], strict=True):
        assert not isinstance(answer, Exception)
        assert answer.settled and answer.outcome == "approved"
        assert answer.decision.run_id == run.id and answer.decision.comment == "release train"
    assert isinstance(answers[5], RunNotFound)
    assert isinstance(answers[6], Forbidden) and "may not approve" in answers[6].message
    for run in runs[1:]:
        assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED
    assert app.get_run(mine.id).run.status == RunStatus.WAITING
    again = app.acting("alice").decide_many([runs[1].id], "approve")
    assert isinstance(again[0], InvalidState) and "settled already" in again[0].message
    with pytest.raises(ParamsError, match="between 1 and 1000"):
        app.acting("alice").decide_many([], "approve")
    with pytest.raises(ParamsError, match="approve or reject"):
        app.acting("alice").decide_many([mine.id], "maybe")
    actions = [a.action for a in app.audit_log() if a.actor == "alice"]
    assert actions.count("decision.approve") == 4


async def test_bulk_decision_counts_towards_a_quorum(
    app: App, worker: Worker, tmp_path: Path
) -> None:
    """Two of two: the first bulk decision records without settling, the second settles;
    the same person named twice decides once."""
    register(app, tmp_path, "    required: 2")
    runs = [app.start_run("gated") for _ in range(3)]
    for run in runs:
        await wait_status(app, run.id, RunStatus.WAITING)
    ids = [r.id for r in runs]
    first = app.acting("alice").decide_many([*ids, ids[0]], "approve")
    assert [getattr(a, "settled", None) for a in first] == [False, False, False, False]
    repeated = app.acting("alice").decide_many(ids[:1], "approve")
    assert isinstance(repeated[0], Conflict)
    second = app.acting("bob").decide_many(ids, "approve")
    assert all(not isinstance(a, Exception) and a.settled for a in second)
    for run in runs:
        assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED
        assert len(app.store.get_decisions(run.id)) == 2
