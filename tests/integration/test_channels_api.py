"""Channels over REST on a real uvicorn: push auth, the stage read path, bad pushes, and a
reader hammering a stage while deployments flip it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import httpx
import pytest
from api_support import Served

from lockgate import Channel, Deployment, Stage
from lockgate.examples.flags import FlagPush, flags, merge
from lockgate.testing import eventually_async


async def wait_deployment(client: httpx.AsyncClient, d: dict[str, Any]) -> dict[str, Any]:
    url = f"/api/v1/channels/{d['channel']}/deployments/{d['id']}"

    async def finished() -> dict[str, Any] | None:
        found = (await client.get(url)).json()
        done = found["run"]["status"] in ("SUCCEEDED", "FAILED", "ROLLED_BACK", "CANCELLED")
        return dict(found) if done else None

    found: dict[str, Any] = await eventually_async(finished, f"deployment {d['id']}", 30)
    return found


async def test_push_deploy_approve_and_read_over_rest(served: Served) -> None:
    """The example channel: push, approve prod, read stages, ETag and 304, slices, history."""
    served.app.channels.register(flags)
    async with served.client("operator") as op, served.client("approver") as approver:
        r = await op.post(
            "/api/v1/channels/flags/push",
            json={"tenant": "acme", "content": {"values": ["dark-mode", "beta-search"]}},
        )
        assert r.status_code == 202, r.text
        d = r.json()
        assert d["state"] == "QUEUED" and d["seq"] == 1
        run_id = d["run_id"]

        async def waiting() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await approver.get("/api/v1/approvals")).json()[
                "approvals"
            ]
            return found

        pending = await eventually_async(waiting, "prod's approval to wait", 10)
        assert pending[0]["step"] == "prod.approval"
        stages = (await op.get("/api/v1/channels/flags/stages")).json()
        assert [(s["stage"], s["version"]) for s in stages] == [
            ("beta", 1),
            ("gamma", 1),
            ("prod", None),
        ]
        decided = await approver.post(
            f"/api/v1/runs/{run_id}/decisions", json={"decision": "approve"}
        )
        assert decided.status_code == 201, decided.text
        done = await wait_deployment(op, d)
        assert done["run"]["status"] == "SUCCEEDED" and done["state"] == "SUCCEEDED"
        [listed] = (await op.get("/api/v1/channels")).json()
        assert listed["name"] == "flags" and listed["head_version"] == 1
        assert listed["defined_here"] and listed["active_deployment"] is None
        assert "push_token_hash" not in listed
        metrics = (await op.get("/metrics")).text
        assert 'lockgate_channel_stage_version{channel="flags",stage="prod"} 1.0' in metrics
        assert 'lockgate_channel_deployments{channel="flags",state="SUCCEEDED"} 1.0' in metrics
        assert [s["name"] for s in done["run"]["steps"]][:3] == [
            "queue",
            "validate_request",
            "merge",
        ]

    async with served.client(None) as anon:  # the example channel is public to read
        r = await anon.get("/api/v1/channels/flags/stages/prod/manifest")
        assert r.status_code == 200
        etag = r.headers["etag"]
        assert etag == f'"{hashlib.sha256(r.content).hexdigest()}"'
        assert r.headers["x-manifest-version"] == "1"
        assert r.json()["tenants"]["acme"]["unique_values"] == ["beta-search", "dark-mode"]
        again = await anon.get(
            "/api/v1/channels/flags/stages/prod/manifest", headers={"If-None-Match": etag}
        )
        assert again.status_code == 304 and again.content == b""
        other = await anon.get(
            "/api/v1/channels/flags/stages/prod/manifest", headers={"If-None-Match": '"x"'}
        )
        assert other.status_code == 200
        part = (await anon.get("/api/v1/channels/flags/stages/prod/tenants/acme")).json()
        assert part["version"] == 1 and part["data"]["count"] == 1
        assert (
            await anon.get("/api/v1/channels/flags/stages/prod/tenants/nobody")
        ).status_code == 404
        # Public reading is of stages only: history and deployments need a token.
        assert (await anon.get("/api/v1/channels/flags/manifests")).status_code == 401
        assert (await anon.post("/api/v1/channels/flags/push", json={})).status_code == 401

    async with served.client("viewer") as viewer:
        history = (await viewer.get("/api/v1/channels/flags/manifests")).json()
        assert [(m["version"], m["parent"]) for m in history["manifests"]] == [(1, None)]
        one = (await viewer.get("/api/v1/channels/flags/manifests/1")).json()
        assert one["manifest"]["count"] == 1 and one["deployment_id"] == d["id"]
        assert (await viewer.get("/api/v1/channels/flags/manifests/9")).status_code == 404
        listed = (await viewer.get("/api/v1/channels/flags/deployments")).json()
        assert [x["id"] for x in listed["deployments"]] == [d["id"]]
        assert (
            await viewer.post("/api/v1/channels/flags/push", json={"tenant": "acme", "content": {}})
        ).status_code == 403


async def test_bad_pushes_get_clear_errors_and_create_nothing(served: Served) -> None:
    served.app.channels.register(
        Channel("small", request=FlagPush, merge=merge, max_content_bytes=100)
    )
    async with served.client("operator") as op:
        r = await op.post(
            "/api/v1/channels/small/push",
            json={"tenant": "bad tenant", "content": {"values": [], "other": 1}, "command": "x"},
        )
        assert r.status_code == 422
        problems = r.json()["error"]["details"]["problems"]
        assert len(problems) == 4, problems  # tenant, command, values too short, extra field
        r = await op.post(
            "/api/v1/channels/small/push",
            json={"tenant": "acme", "content": {"values": ["a" * 200]}},
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = await op.post(
            "/api/v1/channels/small/push",
            content=b'{"tenant": "acme", "content": ' + b"[" * 10 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422
        huge = {"tenant": "acme", "content": {"values": ["x" * 2_000_000]}}
        assert (await op.post("/api/v1/channels/small/push", json=huge)).status_code == 413
        r = await op.post("/api/v1/channels/nope/push", json={"tenant": "a", "content": {}})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await op.get("/api/v1/channels/small/stages/nope/manifest")).status_code == 404
        assert (await op.get("/api/v1/channels/nope/stages")).status_code == 404
        assert (await op.get("/api/v1/channels/small/deployments")).json()["deployments"] == []
        assert (await op.get("/api/v1/channels/small/manifests")).json()["manifests"] == []
    assert served.app.list_runs() == []


async def test_push_tokens_idempotency_and_private_reads(served: Served) -> None:
    """Threat: one tenant pushing over another's content. A push token is bound to a channel
    and a tenant: it pushes that tenant's content only, its idempotency keys are that
    tenant's, it reads nothing, and a bogus one names no channel."""
    served.app.channels.register(Channel("private", request=FlagPush, merge=merge))
    async with served.client("admin") as admin:
        made = await admin.post("/api/v1/channels/private/push-token", json={"tenant": "acme"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        other = await admin.post("/api/v1/channels/private/push-token", json={"tenant": "globex"})
        assert other.status_code == 201
    assert served.app.channels.rows.push_token_holder(
        hashlib.sha256(token.encode()).hexdigest()
    ) == ("private", "acme")
    body = {"content": {"values": ["a"]}}
    async with httpx.AsyncClient(
        base_url=served.base, headers={"Authorization": f"Bearer {token}"}
    ) as pusher:
        first = await pusher.post(
            "/api/v1/channels/private/push", json=body, headers={"Idempotency-Key": "k1"}
        )
        again = await pusher.post(
            "/api/v1/channels/private/push",
            json={**body, "tenant": "acme"},
            headers={"Idempotency-Key": "k1"},
        )
        assert first.status_code == again.status_code == 202, first.text
        assert first.json()["id"] == again.json()["id"]
        assert first.json()["tenant"] == "acme"
        assert first.json()["requested_by"] == "push-token:private/acme"
        over = await pusher.post("/api/v1/channels/private/push", json={**body, "tenant": "globex"})
        assert over.status_code == 403
        # A push token pushes; it does not read.
        assert (await pusher.get("/api/v1/channels/private/stages")).status_code == 401
    async with httpx.AsyncClient(
        base_url=served.base, headers={"Authorization": f"Bearer {other.json()['token']}"}
    ) as globex:
        theirs = await globex.post(
            "/api/v1/channels/private/push", json=body, headers={"Idempotency-Key": "k1"}
        )
        assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    for bogus in ("lgp_private_x", "lgp_x"):
        headers = {"Authorization": f"Bearer {bogus}"}
        async with httpx.AsyncClient(base_url=served.base, headers=headers) as bad:
            for channel in ("private", "no-such-channel"):
                r = await bad.post(f"/api/v1/channels/{channel}/push", json=body)
                assert r.status_code == 401 and channel not in r.text
    async with served.client(None) as anon:
        assert (await anon.get("/api/v1/channels/private/stages")).status_code == 401
    async with served.client("admin") as admin:
        gone = await admin.delete("/api/v1/channels/private/push-token?tenant=acme")
        assert gone.status_code == 204
    async with httpx.AsyncClient(
        base_url=served.base, headers={"Authorization": f"Bearer {token}"}
    ) as pusher:
        assert (await pusher.post("/api/v1/channels/private/push", json=body)).status_code == 401
    assert len(served.app.channels.deployments("private")) == 2
    async with served.client("operator") as op:
        newline = await op.post("/api/v1/channels/private/push", json={**body, "tenant": "acme\n"})
        assert newline.status_code == 422
        internal = await op.post("/api/v1/runs", json={"pipeline": "channel/private"})
        assert internal.status_code == 403
        internal = await op.post(
            "/api/v1/runs", json={"pipeline": "private", "namespace": "channel"}
        )
        assert internal.status_code == 403


async def test_a_reader_during_flips_only_ever_sees_complete_manifests(served: Served) -> None:
    """While 12 deployments flip three stages (a third of them failing their last test and
    flipping back), a reader hammering the last stage gets whole manifests, old or new."""

    def maybe_fail(d: Deployment) -> Any:
        time.sleep(0.01)
        return "refused" if d.seq % 3 == 0 else None

    served.app.channels.register(
        Channel(
            "hammered",
            request=FlagPush,
            merge=merge,
            stages=[Stage("one"), Stage("two"), Stage("three", test=maybe_fail)],
            queue_poll=0.5,
        )
    )
    seen: list[tuple[int, str, bytes]] = []
    stop = asyncio.Event()

    async def read(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            r = await client.get("/api/v1/channels/hammered/stages/three/manifest")
            if r.status_code == 200:
                seen.append((int(r.headers["x-manifest-version"]), r.headers["etag"], r.content))
            else:
                assert r.status_code == 404, r.text  # before the first flip

    async with served.client("operator") as op:
        readers = [asyncio.create_task(read(op)) for _ in range(4)]
        pushed = []
        for i in range(12):
            r = await op.post(
                "/api/v1/channels/hammered/push",
                json={"tenant": f"t{i % 4}", "content": {"values": [f"flag-{i}"]}},
            )
            pushed.append(r.json())
        finals = [await wait_deployment(op, d) for d in pushed]
        stop.set()
        await asyncio.gather(*readers)
    assert [f["run"]["status"] for f in finals].count("ROLLED_BACK") == 4
    assert len(seen) > 50
    versions = set()
    for version, etag, body in seen:
        stored = served.app.channels.manifest("hammered", version)
        assert etag == f'"{hashlib.sha256(body).hexdigest()}"' == f'"{stored.hash}"'
        assert body.decode() == stored.body
        json.loads(body)
        versions.add(version)
    assert len(versions) > 1
    final = served.app.channels.stage_manifest("hammered", "three")
    assert final.data()["count"] == 8  # the eight that passed; failed content never merged


async def test_a_stalled_stage_read_does_not_stall_the_server(served: Served) -> None:
    """Threat: one slow read freezing every request. While PostgreSQL makes a stage read
    wait (a lock held elsewhere), the server goes on answering; the read then completes.
    (A SQLite read in WAL mode never waits, so there the point is moot.)"""
    if not served.app.settings.database_url.startswith("postgresql"):
        return
    import psycopg

    served.app.channels.register(Channel("slow", request=FlagPush, merge=merge, public_read=True))
    dsn = served.app.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE channel_stages IN ACCESS EXCLUSIVE MODE")
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
            read = asyncio.create_task(client.get("/api/v1/channels/slow/stages/live/manifest"))
            await asyncio.sleep(0.3)
            assert not read.done()
            started = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            assert time.monotonic() - started < 1.0
            blocker.rollback()  # let go of the lock
            answer = await read
    assert answer.status_code in (404, 200)


async def test_no_face_but_a_push_starts_a_channel_pipeline(served: Served) -> None:
    """Threat: an operator deploying content that differs from the recorded push, through
    a face that lacks the REST check. The rule lives in the service: the console's start
    form, Python callers (the in-process CLI's path) and REST are all refused, and nothing
    starts; a push still deploys."""
    from lockgate.console.core import COOKIE
    from lockgate.errors import Forbidden

    served.app.channels.register(flags)
    params = {"content": {"values": ["evil"]}, "command": "deploy"}
    with pytest.raises(Forbidden, match="pushing to the channel"):
        served.app.start_run("channel/flags", params)
    with pytest.raises(Forbidden, match="pushing to the channel"):
        served.app.start_run("flags", params, namespace="channel")
    with pytest.raises(Forbidden):
        served.app.launcher.prepare_run("channel/flags", params)
    cookie, session = served.app.sessions.sign_in(served.tokens["operator"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        page = await browser.post(
            "/pipelines/channel/flags/start", data={"csrf": session.csrf, "param.command": "x"}
        )
        assert page.status_code == 403 and "pushing to the channel" in page.text
    async with served.client("operator") as op:
        r = await op.post("/api/v1/runs", json={"pipeline": "channel/flags", "params": params})
        assert r.status_code == 403
    assert served.app.list_runs() == []
    pushed = served.app.channels.push("flags", "acme", {"values": ["dark-mode"]})
    assert served.app.run_record(pushed.run_id).namespace == "channel"
