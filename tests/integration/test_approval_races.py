"""Concurrent decisions over REST: a decision answered 2xx always counted."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Served

from lockgate.specs import load_file

ROUNDS = 200
PEOPLE = (("alice", "approve"), ("bob", "reject"), ("carol", "approve"))


def register(served: Served, tmp_path: Path, required: int) -> None:
    path = tmp_path / "raced.yaml"
    path.write_text(
        f"""
name: raced
steps:
  - name: sign-off
    kind: approval
    required: {required}
  - name: ship
    kind: shell
    argv: [echo, shipped]
"""
    )
    served.app.register(load_file(path))


async def decide(client: httpx.AsyncClient, run_id: str, decision: str) -> httpx.Response:
    return await client.post(f"/api/v1/runs/{run_id}/decisions", json={"decision": decision})


@pytest.mark.parametrize("required", [1, 2])
async def test_every_answered_decision_counts(
    served: Served, tmp_path: Path, required: int
) -> None:
    """200 rounds of approve/reject/approve sent at once by three people: in every round
    exactly one answered decision settled the step, every later one got 409 with the
    outcome and who settled it, the stored decisions are exactly the answered ones, and
    the run went the way the settling decision said."""
    app = served.app
    register(served, tmp_path, required)
    tokens = {who: app.tokens.create(who, "approver")[1] for who, _ in PEOPLE}
    clients = {
        who: httpx.AsyncClient(
            base_url=served.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        for who, token in tokens.items()
    }
    runs = [await asyncio.to_thread(app.start_run, "raced") for _ in range(ROUNDS)]
    deadline = time.monotonic() + 60
    while any(app.store.get_approval(r.id) is None for r in runs):
        assert time.monotonic() < deadline, "approvals were not opened"
        await asyncio.sleep(0.05)

    rng = random.Random(7)

    async def round_(run_id: str) -> list[tuple[str, str, httpx.Response]]:
        order = list(PEOPLE)
        rng.shuffle(order)
        answers = await asyncio.gather(*(decide(clients[w], run_id, d) for w, d in order))
        return [(w, d, a) for (w, d), a in zip(order, answers, strict=True)]

    try:
        results = await asyncio.gather(*(round_(r.id) for r in runs))
        deadline = time.monotonic() + 60
        finished: dict[str, Any] = {}
        while len(finished) < len(runs):
            assert time.monotonic() < deadline, "runs did not finish"
            for r in runs:
                if r.id not in finished:
                    view = app.get_run(r.id)
                    if view.run.status in ("SUCCEEDED", "FAILED", "ROLLED_BACK"):
                        finished[r.id] = view
            await asyncio.sleep(0.05)
    finally:
        for client in clients.values():
            await client.aclose()

    outcomes = {"approved": 0, "rejected": 0}
    for run, answers in zip(runs, results, strict=True):
        counted = [(w, d, a.json()) for w, d, a in answers if a.status_code == 201]
        refused = [a for _, _, a in answers if a.status_code != 201]
        assert all(a.status_code == 409 for a in refused), [a.text for a in refused]
        settling = [body for _, _, body in counted if body["settled"]]
        assert len(settling) == 1, counted
        outcome, settler = settling[0]["outcome"], settling[0]["by"]
        outcomes[outcome] += 1
        # The settling decision is the last that counted; every refusal names it.
        assert max(body["id"] for _, _, body in counted) == settling[0]["id"]
        for a in refused:
            details = a.json()["error"]["details"]
            assert (details["outcome"], details["settled_by"]) == (outcome, settler)
        stored = {(d.by, d.decision) for d in app.store.get_decisions(run.id)}
        assert stored == {(w, d) for w, d, _ in counted}
        view = finished[run.id]
        ship = next(s for s in view.steps if s.name == "ship")
        approvals = [w for w, d, _ in counted if d == "approve"]
        if outcome == "approved":
            assert view.run.status == "SUCCEEDED" and ship.status == "COMPLETED"
            assert len(approvals) == required and all(d == "approve" for _, d, _ in counted)
        else:
            assert view.run.status in ("FAILED", "ROLLED_BACK") and ship.status == "NOT_STARTED"
            assert settler == "bob" and len(approvals) < required
    assert sum(outcomes.values()) == ROUNDS


TEMPLATED = """
name: templated
params:
  service: {type: string, required: true}
  reviewer: {type: string, required: true}
steps:
  - name: sign-off
    kind: approval
    message: "Ship ${service}?"
    approvers: {users: ["${reviewer}", bob]}
    required: 2
  - name: ship
    kind: shell
    argv: [echo, "shipping ${service}"]
"""


async def test_approval_fields_are_rendered_and_people_are_subjects(
    served: Served, tmp_path: Path
) -> None:
    """Placeholders in an approval step are rendered when it starts and stored: approvers
    see the message as rendered, the named person may decide and a token literally named
    ``${reviewer}`` may not; two tokens of one person count once toward ``required``."""
    app = served.app
    path = tmp_path / "templated.yaml"
    path.write_text(TEMPLATED)
    app.register(load_file(path))
    literal = app.tokens.create("${reviewer}", "approver")[1]
    laptop = app.tokens.create("alice-laptop", "approver", subject="alice")[1]
    ci = app.tokens.create("alice-ci", "approver", subject="alice")[1]
    bob = app.tokens.create("bob", "approver")[1]
    run = app.start_run("templated", {"service": "billing", "reviewer": "alice"})
    deadline = time.monotonic() + 10
    while app.store.get_approval(run.id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)

    def as_(token: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(base_url=served.base, headers=headers, timeout=10)

    async with as_(literal) as c:
        [pending] = (await c.get("/api/v1/approvals")).json()["approvals"]
        assert pending["message"] == "Ship billing?"
        assert pending["approvers"]["users"] == ["alice", "bob"]
        refused = await decide(c, run.id, "approve")
        assert refused.status_code == 403, refused.text
    async with as_(laptop) as c:
        first = await decide(c, run.id, "approve")
        assert first.status_code == 201 and first.json()["by"] == "alice"
        assert first.json()["settled"] is False
    async with as_(ci) as c:
        again = await decide(c, run.id, "approve")
        assert again.status_code == 409 and "alice already decided" in again.text
    [pending] = app.approvals()
    assert pending.policy.message == "Ship billing?"
    assert pending.to_dict()["approvals"] == 1
    async with as_(bob) as c:
        last = await decide(c, run.id, "approve")
        assert last.json()["settled"] is True and last.json()["outcome"] == "approved"
    assert (await app.wait(run.id, timeout=10)).status == "SUCCEEDED"


async def test_the_person_who_pushed_may_not_approve_the_run_their_push_started(
    served: Served, tmp_path: Path
) -> None:
    """Self-approval is checked against the subject that started the run, also for runs a
    webhook started (``github:octocat`` was started by octocat)."""
    app = served.app
    register(served, tmp_path, 1)
    octocat = app.tokens.create("octocat", "approver")[1]
    run = app.acting("github:octocat").start_run("raced")
    deadline = time.monotonic() + 10
    while app.store.get_approval(run.id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    headers = {"Authorization": f"Bearer {octocat}"}
    async with httpx.AsyncClient(base_url=served.base, headers=headers) as c:
        r = await decide(c, run.id, "approve")
        assert r.status_code == 403 and "may not approve" in r.text
        r = await decide(c, run.id, "reject")
        assert r.status_code == 201 and r.json()["outcome"] == "rejected"
