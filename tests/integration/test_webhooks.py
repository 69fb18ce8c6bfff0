"""Webhooks with the providers' real payloads, signed over the raw bytes read from disk."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from api_support import Served, wait_done

from lockgate import App
from lockgate.core.buckets import Buckets
from lockgate.store.deliveries import Deliver

#: Real payloads, byte for byte (see SOURCES.md there for origin and licences).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRET = "s3cret-for-webhooks-123"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def make_trigger(served: Served, **fields: Any) -> str:
    body = {"pipeline": "deploy", "secret": SECRET, "params": {"env": "${event.branch}"}, **fields}
    async with served.client("admin") as admin:
        r = await admin.post("/api/v1/triggers", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["secret"] == "***"
        return str(r.json()["id"])


def github_headers(body: bytes, event: str = "push", delivery: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
        "Content-Type": "application/json",
    }


async def test_github_push_starts_a_run_once_per_delivery(served: Served) -> None:
    """A signed push starts the pipeline with params from the event; a repeat starts nothing."""
    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    headers = github_headers(body, delivery="d-1")
    async with httpx.AsyncClient(base_url=served.base) as client:
        first = await client.post(f"/hooks/{trigger}", content=body, headers=headers)
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "DONE"
        [run_id] = first.json()["run_ids"]
        again = await client.post(f"/hooks/{trigger}", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "DUPLICATE"
        assert again.json()["run_ids"] == [run_id]
    async with served.client("viewer") as viewer:
        run = await wait_done(viewer, run_id)
        assert run["params"] == {"env": "master", "replicas": 1}
        assert run["requested_by"] == "github:Codertocat"
        deliveries = (await viewer.get(f"/api/v1/triggers/{trigger}/deliveries")).json()[
            "deliveries"
        ]
        assert len(deliveries) == 1 and deliveries[0]["event"]["commit"] == (
            "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
        )


async def test_bad_requests_get_their_codes_and_never_500(served: Served) -> None:
    """Bad or missing signature 401, unknown trigger 404, bad JSON 400, too large 413."""
    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    async with httpx.AsyncClient(base_url=served.base) as client:
        wrong = {**github_headers(body), "X-Hub-Signature-256": sign(body, "other-secret-xyz")}
        assert (
            await client.post(f"/hooks/{trigger}", content=body, headers=wrong)
        ).status_code == 401
        missing = {k: v for k, v in github_headers(body).items() if "Signature" not in k}
        assert (
            await client.post(f"/hooks/{trigger}", content=body, headers=missing)
        ).status_code == 401
        unknown = await client.post("/hooks/deadbeef", content=body, headers=github_headers(body))
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        junk = b"{not json"
        r = await client.post(f"/hooks/{trigger}", content=junk, headers=github_headers(junk))
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_payload"
        big = b"x" * (2 * 1024 * 1024)
        r = await client.post(f"/hooks/{trigger}", content=big, headers=github_headers(big))
        assert r.status_code == 413
        weird = b"[1, 2, 3]"
        r = await client.post(f"/hooks/{trigger}", content=weird, headers=github_headers(weird))
        assert r.status_code == 400


async def test_filters_reject_other_events_and_branches(served: Served) -> None:
    """A tag push and a ping do not match ``events: [push]`` and ``branches: [master]``."""
    trigger = await make_trigger(served, provider="github", events=["push"], branches=["ma*"])
    async with httpx.AsyncClient(base_url=served.base) as client:
        tag = raw("github/push.tag.json")
        r = await client.post(f"/hooks/{trigger}", content=tag, headers=github_headers(tag))
        assert (
            r.status_code == 202 and r.json()["status"] == "REJECTED" and r.json()["run_ids"] == []
        )
        ping = raw("github/ping.json")
        r = await client.post(
            f"/hooks/{trigger}", content=ping, headers=github_headers(ping, "ping")
        )
        assert r.json()["status"] == "REJECTED"


async def test_github_merged_pull_request(served: Served) -> None:
    """A closed PR with ``merged: true`` is the ``pull_request.merged`` event."""
    trigger = await make_trigger(
        served, provider="github", events=["pull_request.merged"], params={"env": "${event.event}"}
    )
    data = json.loads(raw("github/pull_request.closed.json"))
    data["pull_request"]["merged"] = True
    body = json.dumps(data).encode()
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post(
            f"/hooks/{trigger}", content=body, headers=github_headers(body, "pull_request")
        )
        assert r.json()["status"] == "DONE"
        closed = raw("github/pull_request.closed.json")
        r = await client.post(
            f"/hooks/{trigger}", content=closed, headers=github_headers(closed, "pull_request")
        )
        assert r.json()["status"] == "REJECTED"


async def test_gitlab_token_and_signed_webhooks(served: Served) -> None:
    """X-Gitlab-Token, and webhook-signature with its 5-minute timestamp window."""
    trigger = await make_trigger(served, provider="gitlab")
    body = raw("gitlab/push.json")
    async with httpx.AsyncClient(base_url=served.base) as client:
        token = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        r = await client.post(f"/hooks/{trigger}", content=body, headers=token)
        assert r.status_code == 202 and r.json()["status"] == "DONE"
        bad = {**token, "X-Gitlab-Token": "nope"}
        assert (
            await client.post(f"/hooks/{trigger}", content=body, headers=bad)
        ).status_code == 401

        # Another delivery (the same body again would be a replay: a duplicate).
        body = body + b"\n"

        def signed(stamp: int, msg_id: str) -> dict[str, str]:
            mac = hmac.new(SECRET.encode(), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256)
            return {
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
            }

        now = int(time.time())
        r = await client.post(f"/hooks/{trigger}", content=body, headers=signed(now, "msg-2"))
        assert r.status_code == 202
        old = await client.post(f"/hooks/{trigger}", content=body, headers=signed(now - 600, "m3"))
        assert old.status_code == 401 and "5 minutes" in old.json()["error"]["message"]


async def test_generic_hmac(served: Served) -> None:
    """The generic provider checks X-Signature over the raw body."""
    trigger = await make_trigger(served, provider="generic", params={"env": "${payload.target}"})
    body = b'{"event": "release", "target": "staging", "id": "rel-1"}'
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.put(f"/hooks/{trigger}", content=body, headers={"X-Signature": sign(body)})
        assert r.status_code == 202 and r.json()["status"] == "DONE"
        r = await client.put(
            f"/hooks/{trigger}", content=body, headers={"X-Signature": "sha256=00"}
        )
        assert r.status_code == 401


async def test_a_trigger_without_a_secret_is_refused(served: Served) -> None:
    """Fail closed: no secret, no webhook; bad placeholders listed too."""
    async with served.client("admin") as admin:
        r = await admin.post(
            "/api/v1/triggers",
            json={"provider": "github", "pipeline": "deploy", "params": {"env": "${event.nope}"}},
        )
        assert r.status_code == 422
        problems = r.json()["error"]["details"]["problems"]
        assert any(p.startswith("secret: required") for p in problems)
        assert any("event has provider" in p for p in problems)
    async with served.client("operator") as op:
        assert (await op.post("/api/v1/triggers", json={})).status_code == 403


async def test_bitbucket_cloud_and_server(served: Served) -> None:
    """Both Bitbucket flavours sign with X-Hub-Signature and normalise their refs."""
    cloud = await make_trigger(served, provider="bitbucket-cloud")
    server = await make_trigger(
        served, provider="bitbucket-server", params={"env": "${event.event}"}
    )
    push = raw("bitbucket-cloud/repo-push.json")
    refs = raw("bitbucket-server/repo-refs_changed.json")
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post(
            f"/hooks/{cloud}",
            content=push,
            headers={
                "X-Event-Key": "repo:push",
                "X-Hub-Signature": sign(push),
                "X-Request-UUID": "u-1",
            },
        )
        assert r.json()["status"] == "DONE", r.text
        r = await client.post(
            f"/hooks/{server}",
            content=refs,
            headers={"X-Event-Key": "repo:refs_changed", "X-Hub-Signature": sign(refs)},
        )
        assert r.json()["status"] == "DONE", r.text
        bad = await client.post(f"/hooks/{server}", content=refs, headers={"X-Hub-Signature": "x"})
        assert bad.status_code == 401
    async with served.client("viewer") as viewer:
        deliveries = (await viewer.get(f"/api/v1/triggers/{cloud}/deliveries")).json()["deliveries"]
        event = deliveries[0]["event"]
        assert (event["branch"], event["repo"], event["actor"]) == (
            "name-of-branch",
            "team_name/repo_name",
            "emmap1",
        )
        event = (await viewer.get(f"/api/v1/triggers/{server}/deliveries")).json()["deliveries"][0][
            "event"
        ]
        assert (event["event"], event["branch"], event["repo"]) == (
            "push.delete",
            "feature/wip",
            "~gopher/webhook-test",
        )


async def test_gerrit_uses_a_url_token_and_an_address_allowlist(served: Served) -> None:
    """Gerrit signs nothing: no secret (one is refused); its URL carries a token of its own
    (the trigger id alone is no credential: viewers may know it); the allowlist holds."""
    async with served.client("admin") as admin:
        refused = await admin.post(
            "/api/v1/triggers",
            json={"provider": "gerrit", "pipeline": "deploy", "secret": SECRET},
        )
        assert refused.status_code == 422
        base = {"provider": "gerrit", "pipeline": "deploy", "params": {"env": "${event.branch}"}}
        local = await admin.post("/api/v1/triggers", json={**base, "allow_ips": ["127.0.0.1"]})
        remote = await admin.post("/api/v1/triggers", json={**base, "allow_ips": ["10.0.0.0/8"]})
    patchset = raw("gerrit/patchset-created.json")
    url = local.json()["url"]
    assert url.startswith(f"/hooks/{local.json()['id']}?token=")
    async with httpx.AsyncClient(base_url=served.base) as client:
        for wrong in (f"/hooks/{local.json()['id']}", f"/hooks/{local.json()['id']}?token=x"):
            assert (await client.post(wrong, content=patchset)).status_code == 404
        r = await client.post(url, content=patchset)
        assert r.status_code == 202 and r.json()["status"] == "DONE"
        r = await client.post(remote.json()["url"], content=patchset)
        assert r.status_code == 404
    async with served.client("viewer") as viewer:
        path = f"/api/v1/triggers/{local.json()['id']}/deliveries"
        [run_id] = (await viewer.get(path)).json()["deliveries"][0]["run_ids"]
        run = await wait_done(viewer, run_id)
        assert run["params"]["env"] == "branch-name"


async def test_a_hundred_concurrent_deliveries(served: Served) -> None:
    """105 at once: 85 deliveries, 10 reusing a delivery id, 5 replaying a signed body
    under a new delivery id (threat: replay), 5 badly signed -> exactly 85 runs."""
    import asyncio

    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    bodies = [body + b"\n" * i for i in range(85)]  # 85 distinct signed bodies
    sends = [(b, github_headers(b, delivery=f"d-{i}")) for i, b in enumerate(bodies)]
    sends += [(bodies[i], github_headers(bodies[i], delivery=f"d-{i}")) for i in range(10)]
    sends += [(bodies[i], github_headers(bodies[i], delivery=f"new-{i}")) for i in range(5)]
    sends += [(body, {**github_headers(body), "X-Hub-Signature-256": "sha256=00"})] * 5
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(f"/hooks/{trigger}", content=b, headers=h) for b, h in sends)
        )
    codes = sorted(a.status_code for a in answers)
    assert 500 not in codes and codes.count(401) == 5
    run_ids = {rid for a in answers if a.status_code in (200, 202) for rid in a.json()["run_ids"]}
    assert len(run_ids) == 85
    deliveries = served.app.webhooks.rows.deliveries(trigger, limit=1000)
    assert len(deliveries) == 85 and {d.status for d in deliveries} == {"DONE"}
    assert len(served.app.list_runs(limit=1000)) == 85
    async with served.client("viewer") as viewer:
        metrics = (await viewer.get("/metrics")).text
    assert 'lockgate_deliveries{source="webhook",status="DONE"} 85.0' in metrics
    assert 'lockgate_webhook_answers_total{code="401"} 5.0' in metrics
    accepted = sum(1 for a in answers if a.status_code in (200, 202))
    answered = metrics.count('lockgate_webhook_answers_total{code="20')
    assert accepted == 100 and answered == 2  # 202 for the first, 200 for the repeats


async def test_rate_limit_answers_429_with_retry_after(served: Served) -> None:
    """Past a trigger's burst, deliveries are refused with 429 and Retry-After."""
    trigger = await make_trigger(served, provider="github")
    served.app.deliveries.delivery_budget = Buckets(0.5, 3)
    bodies = [raw("github/push.json") + b" " * i for i in range(5)]
    async with httpx.AsyncClient(base_url=served.base) as client:
        answers = [
            await client.post(f"/hooks/{trigger}", content=b, headers=github_headers(b))
            for b in bodies
        ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limited"


async def test_deliveries_left_by_a_crash_are_retried_and_redelivered(served: Served) -> None:
    """A delivery stuck RECEIVED is processed by the retry routine; redeliver starts anew."""
    trigger = await make_trigger(served, provider="github")
    hooks = served.app.deliveries
    event = {
        "provider": "github",
        "event": "push",
        "repo": "o/r",
        "ref": "refs/heads/main",
        "branch": "main",
        "tag": None,
        "commit": "abc",
        "actor": "me",
        "delivery_id": "x1",
    }
    # As a server leaves a delivery it was processing again when it is killed.
    payload = {"ref": "refs/heads/main"}
    stuck_id = served.app.store.apply(Deliver(trigger, "x1", event, payload, None, "PROCESSING"))[0]
    stuck = hooks.delivery(stuck_id)
    assert hooks.retry_pending(now=stuck.received_at + 1) == 0  # not stale yet
    assert hooks.retry_pending(now=stuck.received_at + 60) == 1
    done = hooks.delivery(stuck.id)
    assert done.status == "DONE" and len(done.run_ids) == 1
    assert hooks.retry_pending(now=stuck.received_at + 120) == 0
    async with served.client("admin") as admin:
        again = (await admin.post(f"/api/v1/deliveries/{stuck.id}/redeliver")).json()
    assert again["status"] == "DONE" and again["run_ids"] != done.run_ids


async def test_retention_prunes_old_and_excess_deliveries(served: Served) -> None:
    """Deliveries past the age limit, or past the count per trigger, are removed."""
    trigger = await make_trigger(served, provider="github")
    triggers = served.app.webhooks.rows
    for i in range(5):
        served.app.store.apply(Deliver(trigger, f"k{i}", None, None, None, "DONE"))
    assert triggers.prune(older_than=0.0, keep=3) == 2
    assert len(triggers.deliveries(trigger)) == 3
    import time

    assert triggers.prune(older_than=time.time() + 1, keep=100) == 3


async def test_a_trigger_deleted_elsewhere_stops_at_once(served: Served) -> None:
    """The server keeps triggers briefly in memory; a trigger deleted by another process is
    refused all the same (the delivery's write checks it), with nothing stored."""
    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        assert r.status_code == 202  # now in this server's memory
        elsewhere = App(served.app.settings)
        try:
            elsewhere.webhooks.delete(trigger)
        finally:
            elsewhere.close()
        r = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    in_process = await served.app.deliveries.receive(trigger, github_headers(body), body)
    assert in_process.status == 404 and in_process.body["error"]["code"] == "not_found"
    assert served.app.webhooks.rows.deliveries(trigger) == []
    assert len(served.app.list_runs()) == 1


async def test_forged_requests_do_not_use_up_a_triggers_budget(served: Served) -> None:
    """Threat: denial of service by forged deliveries. Failed attempts spend their sending
    address's budget, not the trigger's: after 100 forged requests a correctly signed
    delivery is still accepted; the forger hears 429 once its own budget is gone."""
    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    forged = {**github_headers(body), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    async with httpx.AsyncClient(base_url=served.base) as client:
        codes = [
            (await client.post(f"/hooks/{trigger}", content=body, headers=forged)).status_code
            for _ in range(100)
        ]
        good = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        unknown = await client.post("/hooks/not-a-trigger", content=body)
    assert set(codes[:30]) == {401} and set(codes[40:]) == {429}
    assert good.status_code == 202
    assert unknown.status_code == 429  # the same address: its failures are limited


async def test_deep_nesting_is_a_bad_request_not_a_server_error(served: Served) -> None:
    """Threat: a crash on hostile input. A signed body nested 1,000 levels deep is a 400."""
    trigger = await make_trigger(served, provider="github")
    body = b'{"a":' * 1000 + b"1" + b"}" * 1000
    async with httpx.AsyncClient(base_url=served.base) as client:
        r = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_payload"
    async with served.client("viewer") as viewer:
        metrics = (await viewer.get("/metrics")).text
    assert 'lockgate_webhook_answers_total{code="400"} 1.0' in metrics


def standard(body: bytes, msg_id: str, key: bytes, stamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` signed with ``key``."""
    stamp = int(time.time()) if stamp is None else stamp
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


async def test_a_replay_is_refused_after_its_delivery_was_pruned(served: Served) -> None:
    """Threat: replay protection that goes with delivery retention. The guard keeps the
    signed body's identity in its own window: a replay after the delivery was pruned starts
    nothing; once the window (90 days by default) has passed, it is forgotten."""
    trigger = await make_trigger(served, provider="github")
    body = raw("github/push.json")
    async with httpx.AsyncClient(base_url=served.base) as client:
        first = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        assert first.status_code == 202
        served.app.deliveries.prune(now=time.time() + 31 * 86400)  # past delivery retention
        assert served.app.deliveries.list(trigger) == []
        again = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "DUPLICATE"
        assert again.json()["original_status"] == "PRUNED"
        assert len(served.app.list_runs()) == 1
        served.app.deliveries.prune(now=time.time() + 91 * 86400)  # past the replay window
        late = await client.post(f"/hooks/{trigger}", content=body, headers=github_headers(body))
        assert late.status_code == 202 and late.json()["status"] == "DONE"
    assert len(served.app.list_runs()) == 2


async def test_a_signed_id_decides_a_duplicate_where_the_provider_signs_one(
    served: Served,
) -> None:
    """GitLab's signed webhooks and Standard Webhooks sign a unique id with a timestamp:
    the same body under a new signed id is a new delivery (a tag deleted and pushed again);
    the same id again is a duplicate; a stale timestamp is refused."""
    gitlab = await make_trigger(served, provider="gitlab")
    body = raw("gitlab/push.json")
    key = b"0123456789abcdef0123456789abcdef"
    generic = await make_trigger(
        served,
        provider="generic",
        secret="whsec_" + base64.b64encode(key).decode(),
        params={"env": "${payload.target}"},
    )
    plain = b'{"event": "release", "target": "staging"}'
    async with httpx.AsyncClient(base_url=served.base) as client:
        for trigger, sent, signing in ((gitlab, body, SECRET.encode()), (generic, plain, key)):
            one = await client.post(
                f"/hooks/{trigger}", content=sent, headers=standard(sent, "msg-1", signing)
            )
            two = await client.post(
                f"/hooks/{trigger}", content=sent, headers=standard(sent, "msg-2", signing)
            )
            assert one.status_code == two.status_code == 202, (one.text, two.text)
            assert one.json()["run_ids"] != two.json()["run_ids"]
            again = await client.post(
                f"/hooks/{trigger}", content=sent, headers=standard(sent, "msg-1", signing)
            )
            assert again.status_code == 200 and again.json()["status"] == "DUPLICATE"
            stale = standard(sent, "msg-3", signing, int(time.time()) - 600)
            old = await client.post(f"/hooks/{trigger}", content=sent, headers=stale)
            assert old.status_code == 401 and "5 minutes" in old.text
    assert len(served.app.list_runs()) == 4


async def test_bodyless_requests_are_told_apart_by_their_delivery_ids(served: Served) -> None:
    """A GET has no body to sign: its delivery id, not a hash of nothing, identifies it.
    Two pings with different ids are two deliveries; the same id again is one."""
    trigger = await make_trigger(served, provider="generic", params={"env": "ping"})
    async with httpx.AsyncClient(base_url=served.base) as client:
        answers = [
            await client.get(
                f"/hooks/{trigger}", headers={"X-Signature": sign(b""), "X-Delivery-Id": d}
            )
            for d in ("ping-1", "ping-2", "ping-1")
        ]
    assert [a.status_code for a in answers] == [202, 202, 200]
    assert answers[2].json()["status"] == "DUPLICATE"
    assert len(served.app.deliveries.list(trigger)) == 2
