"""The same action through the in-process client and the REST client records the same."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from api_support import Served

from lockgate.client import Client
from lockgate.client.rest import RestClient
from lockgate.examples.flags import flags
from lockgate.specs import load_file
from lockgate.testing import eventually_async

SECRET = "one-door-webhook-secret"


def audited(served: Served, after: int) -> list[tuple[str, str, Any]]:
    """(actor, action, details) of the audit rows after id ``after``, token use left out."""
    return [
        (e.actor, e.action, e.details)
        for e in served.app.store.get_audit(after)
        if e.action != "token.use"
    ]


async def waiting(served: Served, run_id: str) -> None:
    ask = lambda: served.app.store.get_approval(run_id)  # noqa: E731
    await eventually_async(ask, f"run {run_id} to ask for approval", timeout=10)


async def finished(served: Served, run_id: str) -> None:
    done = lambda: served.app.run_record(run_id).finished_at  # noqa: E731
    await eventually_async(done, f"run {run_id} to finish", timeout=10)


async def a_delivery(served: Served) -> int:
    """A real, signed webhook delivery of a generic trigger (for redelivering)."""
    trigger = served.app.webhooks.create(provider="generic", pipeline="deploy", secret=SECRET)
    body = b'{"target": "staging"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(base_url=served.base) as http:
        answer = await http.post(
            f"/hooks/{trigger.id}", content=body, headers={"X-Signature": signature}
        )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["delivery_id"])


#: Every action a client offers that audits, in the order :func:`act` takes them.
ACTIONS = [
    "run.start",
    "run.cancel",
    "run.rerun",
    "run.start",
    "decision.approve",
    "channel.push",
    "channel.pin",
    "channel.unpin",
    "channel.rollback",
    "channel.push_token.create",
    "channel.push_token.revoke",
    "token.create",
    "token.revoke",
    "trigger.create",
    "trigger.update",
    "trigger.rotate_secret",
    "trigger.pause",
    "trigger.resume",
    "delivery.redeliver",
    "trigger.delete",
    "schedule.create",
    "schedule.update",
    "schedule.pause",
    "schedule.resume",
    "schedule.delete",
    "poller.create",
    "poller.update",
    "poller.pause",
    "poller.resume",
    "poller.delete",
]


async def test_every_audited_action_records_the_same_through_both_clients(
    served: Served, tmp_path: Path
) -> None:
    """Every audited action, as alice in-process (the CLI's way) and as alice's token over
    REST: the audit rows are the same, action for action, all under alice."""
    app = served.app
    path = tmp_path / "gate.yaml"
    path.write_text(
        "name: gate\nsteps:\n  - name: ok\n    kind: approval\n    allow_self_approval: true\n"
    )
    app.register(load_file(path))
    app.channels.register(flags)
    token = app.tokens.create("alice-laptop", "admin", subject="alice")[1]
    rest = RestClient(served.base, token)
    delivery = await a_delivery(served)

    async def act(client: Client) -> list[tuple[str, str, Any]]:
        start = max((e.id for e in app.store.get_audit(0)), default=0)

        async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(fn, *args, **kwargs)

        run = await call(client.start_run, "gate")
        await waiting(served, run.id)
        await call(client.cancel_run, run.id)
        await finished(served, run.id)
        await call(client.rerun, run.id)
        other = await call(client.start_run, "gate")
        await waiting(served, other.id)
        await call(client.decide, other.id, "approve")
        await call(client.channels.push, "flags", "acme", {"values": ["dark"]})
        await call(client.channels.pin, "flags", "gamma")
        await call(client.channels.unpin, "flags", "gamma")
        while not app.channels.history("flags"):  # the push's merge writes version 1
            await asyncio.sleep(0.02)
        await call(client.channels.rollback_stage, "flags", "beta", 1)
        await call(client.channels.create_push_token, "flags", "acme")
        await call(client.channels.revoke_push_token, "flags", "acme")
        made, _ = await call(client.tokens.create, "bot", "viewer")
        await call(client.tokens.revoke, made.id)
        trigger = await call(
            client.webhooks.create,
            provider="github",
            pipeline="deploy",
            secret="s" * 20,
            branches=["main"],
        )
        await call(client.webhooks.update, trigger.id, events=["push"])
        await call(client.webhooks.rotate_secret, trigger.id, overlap_seconds=60)
        await call(client.webhooks.pause, trigger.id)
        await call(client.webhooks.resume, trigger.id)
        await call(client.deliveries.redeliver, delivery)
        await call(client.webhooks.delete, trigger.id)
        schedule = await call(client.schedules.create, pipeline="deploy", interval_seconds=3600)
        await call(client.schedules.update, schedule.id, cron="0 3 * * *")
        await call(client.schedules.pause, schedule.id)
        await call(client.schedules.resume, schedule.id)
        await call(client.schedules.delete, schedule.id)
        repository = str(tmp_path / "repo.git")
        poller = await call(client.pollers.create, pipeline="deploy", repository=repository)
        await call(client.pollers.update, poller.id, refs=["refs/heads/main"])
        await call(client.pollers.pause, poller.id)
        await call(client.pollers.resume, poller.id)
        await call(client.pollers.delete, poller.id)
        return audited(served, start)

    try:
        local = await act(app.acting("alice"))
        remote = await act(rest)
    finally:
        await asyncio.to_thread(rest.close)

    def shape(rows: list[tuple[str, str, Any]]) -> list[tuple[str, str, list[str]]]:
        return [(actor, action, sorted(details or {})) for actor, action, details in rows]

    assert [action for _, action, _ in local] == ACTIONS
    assert shape(local) == shape(remote)
    assert {actor for actor, _, _ in local + remote} == {"alice"}


async def test_pause_and_resume_through_rest_stop_and_restart_a_webhook(served: Served) -> None:
    """A paused trigger answers 404 like an unknown one, at once on this server; resumed,
    it starts runs again. Unknown ids are 404 for every management route."""
    trigger = served.app.webhooks.create(provider="generic", pipeline="deploy", secret=SECRET)
    body = b'{"target": "staging"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with served.client("admin") as admin, httpx.AsyncClient(base_url=served.base) as http:

        async def deliver() -> int:
            headers = {"X-Signature": signature, "X-Request-Id": str(time.monotonic())}
            answer = await http.post(f"/hooks/{trigger.id}", content=body, headers=headers)
            return answer.status_code

        assert await deliver() == 202
        paused = await admin.post(f"/api/v1/triggers/{trigger.id}/pause")
        assert paused.status_code == 200 and paused.json()["enabled"] is False
        assert await deliver() == 404
        resumed = await admin.post(f"/api/v1/triggers/{trigger.id}/resume")
        assert resumed.json()["enabled"] is True
        assert (await admin.get(f"/api/v1/triggers/{trigger.id}")).json()["secret"] == "***"
        for kind in ("triggers", "schedules", "pollers"):
            for method, suffix in (("GET", ""), ("POST", "/pause"), ("DELETE", "")):
                r = await admin.request(method, f"/api/v1/{kind}/nope{suffix}")
                assert r.status_code == 404, (kind, method, r.text)
    async with served.client("viewer") as viewer:
        assert (await viewer.post(f"/api/v1/triggers/{trigger.id}/pause")).status_code == 403
        assert (await viewer.get(f"/api/v1/triggers/{trigger.id}")).status_code == 403
