"""Trigger management: updates of each kind, and webhook secrets rotated with an overlap in
which both secrets verify, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest
from api_support import Served

from lockgate import App, ParamsError, Settings

OLD = "the-first-secret-of-it"
NEW = "the-second-secret-of-it"


def signed(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


async def test_a_rotated_secret_verifies_with_the_old_one_during_the_overlap(
    served: Served,
) -> None:
    """After a rotation both secrets verify until the overlap ends; with no overlap the old
    one stops at once. The answer shows the new secret once; the trigger never does."""
    trigger = served.app.webhooks.create(
        provider="generic", pipeline="deploy", secret=OLD, params={"env": "x"}
    )
    async with served.client("admin") as admin, httpx.AsyncClient(base_url=served.base) as http:

        async def deliver(secret: str, n: int) -> int:
            body = f'{{"n": {n}}}'.encode()
            answer = await http.post(
                f"/hooks/{trigger.id}", content=body, headers=signed(secret, body)
            )
            return answer.status_code

        rotated = await admin.post(
            f"/api/v1/triggers/{trigger.id}/rotate-secret",
            json={"secret": NEW, "overlap_seconds": 600},
        )
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["new_secret"] == NEW and rotated.json()["secret"] == "***"
        assert rotated.json()["previous_secret"] == "***"
        assert (await deliver(NEW, 1), await deliver(OLD, 2)) == (202, 202)
        assert await deliver("a-secret-never-used-here", 3) == 401
        again = await admin.post(
            f"/api/v1/triggers/{trigger.id}/rotate-secret", json={"overlap_seconds": 0}
        )
        made = again.json()["new_secret"]
        assert len(made) >= 32 and made not in (OLD, NEW)
        assert (await deliver(NEW, 4), await deliver(made, 5)) == (401, 202)
        short = await admin.post(
            f"/api/v1/triggers/{trigger.id}/rotate-secret", json={"secret": "short"}
        )
        assert short.status_code == 422
        assert "secret: at least 16 characters" in short.text
        listed = (await admin.get(f"/api/v1/triggers/{trigger.id}")).json()
        assert made not in str(listed) and NEW not in str(listed)


async def test_a_gerrit_url_token_rotates_too(served: Served) -> None:
    """A provider that signs nothing gets a new URL token; the old URL works meanwhile."""
    trigger = served.app.webhooks.create(provider="gerrit", pipeline="deploy", secret=None)
    token = trigger.url_token
    fresh = served.app.webhooks.rotate_secret(trigger.id, overlap_seconds=600)[1]
    update = {"refName": "refs/heads/main", "project": "p", "newRev": "a"}
    body = json.dumps({"type": "ref-updated", "refUpdate": update}).encode()
    async with httpx.AsyncClient(base_url=served.base) as http:
        for t in (token, fresh):
            answer = await http.post(f"/hooks/{trigger.id}?token={t}", content=body)
            assert answer.status_code in (200, 202), answer.text
        stale = served.app.webhooks.rotate_secret(trigger.id, overlap_seconds=0)[1]
        assert (
            await http.post(f"/hooks/{trigger.id}?token={token}", content=body)
        ).status_code == 404
        ok = await http.post(f"/hooks/{trigger.id}?token={stale}", content=body)
        assert ok.status_code in (200, 202)


async def test_updates_change_what_each_kind_does_and_refuse_bad_values(served: Served) -> None:
    """PATCH changes only the fields given; bad values are refused with every problem and
    change nothing; a schedule's new timing is recomputed; a poller's new repository starts
    with a fresh baseline."""
    app: App = served.app
    trigger = app.webhooks.create(provider="generic", pipeline="deploy", secret=OLD)
    schedule = app.schedules.create(pipeline="deploy", interval_seconds=3600)
    poller = app.pollers.create(pipeline="deploy", repository="/srv/a.git")
    async with served.client("admin") as admin:
        changed = await admin.patch(
            f"/api/v1/triggers/{trigger.id}",
            json={"branches": ["main"], "params": {"env": "${event.branch}"}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["branches"] == ["main"] and changed.json()["events"] == []
        bad = await admin.patch(
            f"/api/v1/triggers/{trigger.id}",
            json={"allow_ips": ["nope"], "params": {"x": "${oops"}},
        )
        assert bad.status_code == 422
        problems = bad.json()["error"]["details"]["problems"]
        assert len(problems) == 2 and app.webhooks.get(trigger.id).allow_ips == []
        timed = await admin.patch(
            f"/api/v1/schedules/{schedule.id}",
            json={"cron": "0 4 * * *", "timezone": "Europe/Paris"},
        )
        assert timed.status_code == 200 and timed.json()["interval_seconds"] is None
        tick = time.gmtime(timed.json()["next_fire_at"])
        assert (tick.tm_min, tick.tm_sec) == (0, 0) and tick.tm_hour in (2, 3)  # 04:00 Paris
        wrong = await admin.patch(f"/api/v1/schedules/{schedule.id}", json={"cron": "nope"})
        assert wrong.status_code == 422
        unknown = await admin.patch("/api/v1/pollers/nope", json={"refs": ["x"]})
        assert unknown.status_code == 404
    app.pollers.rows.record(poller.id, {"refs/heads/main": "abc"}, None)
    moved = app.acting("root").pollers.update(poller.id, repository="/srv/b.git")
    assert moved.repository == "/srv/b.git" and moved.seen is None
    with pytest.raises(ParamsError, match="interval_seconds: at least 5"):
        app.pollers.update(poller.id, interval_seconds=1)
    actions = [
        e.action for e in app.store.get_audit(0) if e.action.endswith((".update", "_secret"))
    ]
    assert actions == ["trigger.update", "schedule.update", "poller.update"]


def test_delivery_retention_comes_from_the_settings(app: App) -> None:
    """The hourly prune keeps LOCKGATE_DELIVERY_RETENTION_COUNT firings per trigger and none
    older than LOCKGATE_DELIVERY_RETENTION_DAYS."""
    from lockgate.triggers.deliveries import Deliveries

    def deliveries(settings: Settings) -> Deliveries:
        return Deliveries(app.store, app.launcher, settings, app.webhooks.cache)

    schedule = app.schedules.create(pipeline="deploy", interval_seconds=60)
    tick = schedule.next_fire_at
    for n in range(3):
        app.schedules.tick(now=tick + n * 60)
    assert len(app.deliveries.list(schedule.id)) == 3
    keep_one = deliveries(app.settings.with_(delivery_retention_count=1))
    assert keep_one.prune() == 2
    assert len(app.deliveries.list(schedule.id)) == 1
    none_old = deliveries(app.settings.with_(delivery_retention_days=0))
    assert none_old.prune(now=time.time() + 1) == 1
