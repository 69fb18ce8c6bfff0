"""The REST API served by a real uvicorn on 127.0.0.1: auth, roles, runs, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from api_support import Served, wait_done

from lockgate import App, Pipeline, Settings, StepContext, step
from lockgate.server.asgi import create_asgi
from lockgate.specs import load_file
from lockgate.store import schema
from lockgate.testing import eventually_async


async def approvals(client: httpx.AsyncClient, count: int) -> None:
    """Wait until ``count`` approvals wait (as REST lists them)."""

    async def listed() -> bool:
        return len((await client.get("/api/v1/approvals")).json()["approvals"]) == count

    await eventually_async(listed, f"{count} waiting approvals", 5)


async def test_a_run_through_the_api(served: Served) -> None:
    """An operator starts a run (once per Idempotency-Key); a viewer reads run, events, logs."""
    async with served.client("operator") as op, served.client("viewer") as viewer:
        body = {"pipeline": "deploy", "params": {"env": "prod"}}
        first = await op.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k1"})
        again = await op.post("/api/v1/runs", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 201 and first.json()["id"] == again.json()["id"]
        run_id = first.json()["id"]
        assert first.json()["requested_by"] == "operator-bot"
        run = await wait_done(viewer, run_id)
        assert run["status"] == "SUCCEEDED" and run["steps"][0]["output"] == {"env": "prod"}
        events = (await viewer.get(f"/api/v1/runs/{run_id}/events")).json()
        assert events[-1]["status"] == "SUCCEEDED"
        logs = (await viewer.get(f"/api/v1/runs/{run_id}/logs")).json()
        assert [line["message"] for line in logs] == ["deploying to prod"]


async def test_roles_are_enforced_on_every_route(served: Served) -> None:
    """No token or a bad one: 401. A role too low: 403. Admins manage tokens."""
    async with served.client(None) as anon:
        r = await anon.get("/api/v1/runs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await anon.get("/api/v1/runs", headers={"Authorization": "Bearer lg_nope_x"})
        assert r.status_code == 401
    async with served.client("viewer") as viewer:
        r = await viewer.post("/api/v1/runs", json={"pipeline": "deploy", "params": {"env": "x"}})
        assert r.status_code == 403 and "needs the operator role" in r.json()["error"]["message"]
        assert (await viewer.get("/api/v1/tokens")).status_code == 403
    async with served.client("operator") as op:
        assert (
            await op.post("/api/v1/runs/x/decisions", json={"decision": "approve"})
        ).status_code == 403
    async with served.client("admin") as admin:
        made = (await admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})).json()
        token = made["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await admin.get("/api/v1/runs", headers=headers)).status_code == 200
        assert (await admin.delete(f"/api/v1/tokens/{made['id']}")).status_code == 200
        assert (await admin.get("/api/v1/runs", headers=headers)).status_code == 401
        listed = (await admin.get("/api/v1/tokens")).json()
        assert all("hash" not in t and "token" not in t for t in listed)
    stored = served.app.store.read(lambda c: c.execute(schema.tokens.select()).all())
    assert all(token not in str(tuple(row)) for row in stored)


async def test_errors_have_one_shape_and_stable_codes(served: Served) -> None:
    """Unknown ids 404, bad params 422 with every problem, bad JSON 422, too large 413."""
    async with served.client("operator") as op:
        r = await op.get("/api/v1/runs/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await op.post("/api/v1/runs", json={"pipeline": "deploy", "params": {"replicas": "x"}})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_params"
        assert len(r.json()["error"]["details"]["problems"]) == 2
        r = await op.post(
            "/api/v1/runs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = await op.post("/api/v1/runs", json={"pipeline": "deploy", "colour": 1})
        assert r.status_code == 422 and "colour" in r.json()["error"]["message"]
        r = await op.post("/api/v1/runs", content=b"x" * (2 * 1024 * 1024))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = await op.get("/api/v1/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await op.post("/api/v1/runs/nope/cancel")
        assert r.status_code == 404


async def test_run_list_pages_with_a_cursor(served: Served) -> None:
    """``next`` walks the list without gaps or repeats."""
    async with served.client("operator") as op:
        ids = set()
        for i in range(5):
            r = await op.post(
                "/api/v1/runs", json={"pipeline": "deploy", "params": {"env": f"e{i}"}}
            )
            ids.add(r.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await op.get("/api/v1/runs", params=params)).json()
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert len(seen) == 5 and set(seen) == ids
        bad = await op.get("/api/v1/runs", params={"cursor": "garbage!"})
        assert bad.status_code == 422


async def test_healthz_and_openapi(served: Served) -> None:
    """``/healthz`` needs no token; the OpenAPI document lists the routes."""
    async with served.client(None) as anon:
        assert (await anon.get("/healthz")).json()["status"] == "ok"
        spec = (await anon.get("/openapi.json")).json()
        assert "/api/v1/runs/{run_id}/decisions" in spec["paths"]


async def test_approvals_and_cancel_through_the_api(served: Served, tmp_path: Any) -> None:
    """Decisions use the token's identity and role; self-approval is refused; cancel works."""
    path = tmp_path / "gate.yaml"
    path.write_text(
        "name: gate\nsteps:\n  - name: ok\n    kind: approval\n"
        "    approvers: {roles: [approver]}\n    required: 1\n"
    )
    served.app.register(load_file(path))
    extra = {"Authorization": f"Bearer {served.app.tokens.create('someone-else', 'operator')[1]}"}
    async with served.client("approver") as approver, served.client("operator") as op:
        mine = (await approver.post("/api/v1/runs", json={"pipeline": "gate"})).json()["id"]
        other = (await op.post("/api/v1/runs", json={"pipeline": "gate"}, headers=extra)).json()
        await approvals(op, 2)
        pending = (await op.get("/api/v1/approvals")).json()["approvals"]
        assert {p["run_id"] for p in pending} == {mine, other["id"]}
        r = await approver.post(f"/api/v1/runs/{mine}/decisions", json={"decision": "approve"})
        assert r.status_code == 403 and "may not approve it" in r.json()["error"]["message"]
        r = await approver.post(
            f"/api/v1/runs/{other['id']}/decisions", json={"decision": "approve", "comment": "ok"}
        )
        assert r.status_code == 201 and r.json()["by"] == "approver-bot"
        assert (await wait_done(op, other["id"]))["status"] == "SUCCEEDED"
        r = await approver.post(
            f"/api/v1/runs/{other['id']}/decisions", json={"decision": "reject"}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
        assert (await op.post(f"/api/v1/runs/{mine}/cancel")).status_code == 200
        assert (await wait_done(op, mine))["status"] == "CANCELLED"
        r = await op.post(f"/api/v1/runs/{mine}/cancel")
        assert r.status_code == 409


async def test_one_decision_on_many_runs_over_rest(served: Served, tmp_path: Path) -> None:
    """POST /decisions answers every run on its own: decided, refused (with the code a
    decision alone gets), and a forbidden one audited as a refusal; bad bodies are 422."""
    path = tmp_path / "gate.yaml"
    path.write_text("name: gate\nsteps:\n  - name: ok\n    kind: approval\n")
    served.app.register(load_file(path))
    extra = {"Authorization": f"Bearer {served.app.tokens.create('someone-else', 'operator')[1]}"}
    async with served.client("approver") as approver, served.client("operator") as op:
        theirs = [
            (await op.post("/api/v1/runs", json={"pipeline": "gate"}, headers=extra)).json()["id"]
            for _ in range(3)
        ]
        mine = (await approver.post("/api/v1/runs", json={"pipeline": "gate"})).json()["id"]
        await approvals(op, 4)
        body = {"runs": [*theirs, "nope", mine], "decision": "approve", "comment": "train"}
        r = await op.post("/api/v1/decisions", json=body)
        assert r.status_code == 403  # an operator is no approver
        r = await approver.post("/api/v1/decisions", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["decided"], out["refused"]) == (3, 2)
        assert [x["run_id"] for x in out["results"]] == body["runs"]
        for x in out["results"][:3]:
            assert x["error"] is None and x["settled"] and x["outcome"] == "approved"
            assert x["by"] == "approver-bot" and x["comment"] == "train"
        assert out["results"][3]["error"]["code"] == "not_found"
        assert out["results"][4]["error"]["code"] == "forbidden"
        for run_id in theirs:
            assert (await wait_done(op, run_id))["status"] == "SUCCEEDED"
        refusals = [a for a in served.app.audit_log(limit=1000) if a.action == "auth.denied"]
        assert any("may not approve" in a.details["reason"] for a in refusals)
        for bad in (
            {"runs": [], "decision": "approve"},
            {"runs": ["x"] * 1001, "decision": "approve"},
            {"runs": ["x"], "decision": "maybe"},
            {"runs": ["x"], "decision": "approve", "extra": 1},
        ):
            r = await approver.post("/api/v1/decisions", json=bad)
            assert r.status_code == 422, bad


@step
async def chatty(ctx: StepContext) -> None:
    for i in range(3):
        ctx.log.info("line %d", i)
        await asyncio.sleep(0.3)


async def test_logs_stream_live_over_sse(served: Served) -> None:
    """Log lines arrive while the step runs; the stream ends with the run's status."""
    served.app.register(Pipeline("chatty", [chatty]))
    async with served.client("operator") as op:
        run_id = (await op.post("/api/v1/runs", json={"pipeline": "chatty"})).json()["id"]
        received: list[tuple[str, str]] = []
        first_at: float | None = None
        async with op.stream("GET", f"/api/v1/runs/{run_id}/logs/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event = ""
            async for raw in response.aiter_lines():
                if raw.startswith("event: "):
                    event = raw.removeprefix("event: ")
                elif raw.startswith("data: "):
                    received.append((event, raw.removeprefix("data: ")))
                    if first_at is None:
                        first_at = asyncio.get_running_loop().time()
        finished_at = asyncio.get_running_loop().time()
    logs = [json.loads(d)["message"] for e, d in received if e == "log"]
    assert logs == ["line 0", "line 1", "line 2"]
    assert received[-1] == ("end", json.dumps({"status": "SUCCEEDED"}))
    assert first_at is not None and finished_at - first_at > 0.4  # the first line came early
    async with served.client("viewer") as viewer:
        resumed = await viewer.get(
            f"/api/v1/runs/{run_id}/logs/stream", headers={"Last-Event-ID": "0"}
        )
        assert resumed.text.count("event: log") == 3


async def test_metrics_count_runs_steps_and_the_queue(served: Served) -> None:
    """``/metrics`` (viewer) exposes runs by status, step durations and the queue."""
    async with served.client("operator") as op:
        run_id = (
            await op.post("/api/v1/runs", json={"pipeline": "deploy", "params": {"env": "a"}})
        ).json()["id"]
        await wait_done(op, run_id)
        text = (await op.get("/metrics")).text
    assert 'lockgate_runs_finished_total{status="SUCCEEDED"} 1.0' in text
    assert "lockgate_runs_started_total 1.0" in text
    assert 'lockgate_step_duration_seconds_count{status="COMPLETED"} 1.0' in text
    assert "lockgate_queue_depth 0.0" in text
    async with served.client(None) as anon:
        assert (await anon.get("/metrics")).status_code == 401


async def test_the_audit_log_records_who_did_what(served: Served, tmp_path: Any) -> None:
    """Runs started and cancelled, decisions, token use and token changes; admins only."""
    path = tmp_path / "audit.yaml"
    path.write_text("name: audited\nsteps:\n  - name: ok\n    kind: approval\n")
    served.app.register(load_file(path))
    async with served.client("operator") as op, served.client("approver") as approver:
        run_id = (await op.post("/api/v1/runs", json={"pipeline": "audited"})).json()["id"]
        await approvals(op, 1)
        r = await approver.post(f"/api/v1/runs/{run_id}/decisions", json={"decision": "approve"})
        assert r.status_code == 201
        other = (await op.post("/api/v1/runs", json={"pipeline": "audited"})).json()["id"]
        await op.post(f"/api/v1/runs/{other}/cancel")
        assert (await op.get("/api/v1/audit")).status_code == 403
    async with served.client("admin") as admin:
        made = (await admin.post("/api/v1/tokens", json={"name": "temp", "role": "viewer"})).json()
        await admin.delete(f"/api/v1/tokens/{made['id']}")
        entries = (await admin.get("/api/v1/audit")).json()
    seen = [(e["actor"], e["action"], e["target"]) for e in entries]
    assert ("operator-bot", "run.start", run_id) in seen
    assert ("approver-bot", "decision.approve", run_id) in seen
    assert ("operator-bot", "run.cancel", other) in seen
    assert ("admin-bot", "token.create", made["id"]) in seen
    assert ("admin-bot", "token.revoke", made["id"]) in seen
    assert {a for a, action, _ in seen if action == "token.use"} >= {"operator-bot", "admin-bot"}


REQUIRED = {
    ("GET", "/api/v1/pipelines"): "viewer",
    ("GET", "/api/v1/pipelines/{name}"): "viewer",
    ("GET", "/api/v1/pipelines/{name}/versions"): "viewer",
    ("POST", "/api/v1/runs"): "operator",
    ("GET", "/api/v1/runs"): "viewer",
    ("GET", "/api/v1/runs/{run_id}"): "viewer",
    ("GET", "/api/v1/runs/{run_id}/events"): "viewer",
    ("GET", "/api/v1/runs/{run_id}/logs"): "viewer",
    ("GET", "/api/v1/runs/{run_id}/logs/stream"): "viewer",
    ("POST", "/api/v1/runs/{run_id}/cancel"): "operator",
    ("POST", "/api/v1/runs/{run_id}/rerun"): "operator",
    ("GET", "/api/v1/approvals"): "viewer",
    ("POST", "/api/v1/runs/{run_id}/decisions"): "approver",
    ("GET", "/api/v1/runs/{run_id}/approval"): "viewer",
    ("POST", "/api/v1/decisions"): "approver",
    ("POST", "/api/v1/runs/{run_id}/resolve"): "operator",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/sessions"): "admin",
    ("DELETE", "/api/v1/sessions/{ref}"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("POST", "/api/v1/prune"): "admin",
    ("POST", "/api/v1/triggers"): "admin",
    ("GET", "/api/v1/triggers"): "admin",
    ("GET", "/api/v1/triggers/{row_id}"): "admin",
    ("PATCH", "/api/v1/triggers/{row_id}"): "admin",
    ("POST", "/api/v1/triggers/{row_id}/rotate-secret"): "admin",
    ("POST", "/api/v1/triggers/{row_id}/pause"): "admin",
    ("POST", "/api/v1/triggers/{row_id}/resume"): "admin",
    ("DELETE", "/api/v1/triggers/{row_id}"): "admin",
    ("GET", "/api/v1/triggers/{trigger_id}/deliveries"): "viewer",
    ("POST", "/api/v1/deliveries/{delivery_id}/redeliver"): "admin",
    ("POST", "/api/v1/schedules"): "admin",
    ("GET", "/api/v1/schedules"): "viewer",
    ("GET", "/api/v1/schedules/{row_id}"): "viewer",
    ("PATCH", "/api/v1/schedules/{row_id}"): "admin",
    ("POST", "/api/v1/schedules/{row_id}/pause"): "admin",
    ("POST", "/api/v1/schedules/{row_id}/resume"): "admin",
    ("DELETE", "/api/v1/schedules/{row_id}"): "admin",
    ("POST", "/api/v1/pollers"): "admin",
    ("GET", "/api/v1/pollers"): "viewer",
    ("GET", "/api/v1/pollers/{row_id}"): "viewer",
    ("PATCH", "/api/v1/pollers/{row_id}"): "admin",
    ("POST", "/api/v1/pollers/{row_id}/pause"): "admin",
    ("POST", "/api/v1/pollers/{row_id}/resume"): "admin",
    ("DELETE", "/api/v1/pollers/{row_id}"): "admin",
    ("POST", "/api/v1/queues"): "admin",
    ("GET", "/api/v1/queues"): "viewer",
    ("GET", "/api/v1/queues/{row_id}"): "viewer",
    ("PATCH", "/api/v1/queues/{row_id}"): "admin",
    ("POST", "/api/v1/queues/{row_id}/pause"): "admin",
    ("POST", "/api/v1/queues/{row_id}/resume"): "admin",
    ("DELETE", "/api/v1/queues/{row_id}"): "admin",
    ("GET", "/metrics"): "viewer",
    ("GET", "/api/v1/channels"): "viewer",
    ("GET", "/api/v1/channels/{channel}"): "viewer",
    ("POST", "/api/v1/channels/{channel}/push"): "operator",
    ("GET", "/api/v1/channels/{channel}/deployments"): "viewer",
    ("GET", "/api/v1/channels/{channel}/deployments/{deployment_id}"): "viewer",
    ("GET", "/api/v1/channels/{channel}/stages"): "viewer",
    ("GET", "/api/v1/channels/{channel}/stages/{stage}/manifest"): "viewer",
    ("GET", "/api/v1/channels/{channel}/stages/{stage}/tenants/{tenant}"): "viewer",
    ("GET", "/api/v1/channels/{channel}/manifests"): "viewer",
    ("POST", "/api/v1/channels/{channel}/stages/{stage}/rollback"): "operator",
    ("POST", "/api/v1/channels/{channel}/stages/{stage}/pin"): "operator",
    ("POST", "/api/v1/channels/{channel}/stages/{stage}/unpin"): "operator",
    ("GET", "/api/v1/channels/{channel}/flips"): "viewer",
    ("GET", "/api/v1/channels/{channel}/manifests/{version}"): "viewer",
    ("POST", "/api/v1/channels/{channel}/push-token"): "admin",
    ("DELETE", "/api/v1/channels/{channel}/push-token"): "admin",
}
ROLES = ["viewer", "operator", "approver", "admin"]


async def test_every_route_checks_the_role(served: Served) -> None:
    """Each route with each role: allowed from its role up, 403 below, 401 without a token."""
    async with served.client(None) as anon:
        spec = (await anon.get("/openapi.json")).json()
    routes = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path.startswith("/api/") or path == "/metrics"
    }
    assert routes == set(REQUIRED), "a route was added or removed: update REQUIRED"
    for (method, path), needed in sorted(REQUIRED.items()):
        url = path.format(
            name="x",
            run_id="x",
            token_id="x",
            trigger_id="x",
            delivery_id=0,
            schedule_id="x",
            poller_id="x",
            row_id="x",
            channel="x",
            deployment_id="x",
            stage="x",
            tenant="x",
            version=1,
            ref="0123456789abcdef",
        )
        async with served.client(None) as anon:
            assert (await anon.request(method, url)).status_code == 401, (method, path)
        for role in ROLES:
            async with served.client(role) as client:
                kwargs = {"json": {}} if method in ("POST", "PATCH") else {}
                status = (await client.request(method, url, **kwargs)).status_code
            allowed = ROLES.index(role) >= ROLES.index(needed)
            assert (status != 403) == allowed, (method, path, role, status)
            assert status != 401 and status < 500, (method, path, role, status)


async def test_deeply_nested_bodies_are_refused_not_a_server_error(served: Served) -> None:
    """Threat: a crash (and a traceback) on hostile input anywhere in the API."""
    text = '{"pipeline": "deploy", "params": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}"
    async with served.client("operator") as op:
        r = await op.post(
            "/api/v1/runs", content=text, headers={"Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, r.text
        assert "Traceback" not in r.text


async def test_database_errors_reach_clients_as_a_code_and_a_reference(tmp_path: Path) -> None:
    """Threat: SQL text and bound values leaking to an unauthenticated client. /healthz on
    a database without its schema answers 503 with a code and a reference, nothing more."""
    app = App(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        transport = httpx.ASGITransport(app=create_asgi(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/healthz")
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "schema_missing" and error["details"]["ref"] in error["message"]
        assert "SELECT" not in r.text and "runs" not in r.text
    finally:
        app.close()


async def test_viewers_read_no_credentials(served: Served, tmp_path: Path) -> None:
    """Threat: a viewer reading a credential. A poller's repository URL cannot hold a
    password, and a secret a step put in the run's context bag is masked like the logs."""
    async with served.client("admin") as admin:
        r = await admin.post(
            "/api/v1/pollers",
            json={
                "pipeline": "deploy",
                "repository": "https://deployer:hunter2-token@git.example.com/app.git",
                "refs": ["refs/heads/main"],
                "interval_seconds": 3600,
            },
        )
        # Credentials are a named secret, never part of the URL: refused, never stored.
        assert r.status_code == 422 and "no user or password in an http(s) URL" in r.text, r.text
    async with served.client("viewer") as viewer:
        listed = (await viewer.get("/api/v1/pollers")).text
    assert "hunter2" not in listed

    app = App(served.app.settings.with_(secrets={"TOKEN": "bag-secret-123"}))
    try:

        @step
        def remember(ctx: StepContext) -> None:
            ctx.bag["auth"] = "Bearer bag-secret-123"

        app.register(Pipeline("bag", [remember]))
        done = await app.execute_async("bag", timeout=30)
        assert done.status == "SUCCEEDED"
    finally:
        app.close()
    async with served.client("viewer") as viewer:
        shown = (await viewer.get(f"/api/v1/runs/{done.id}")).json()
    assert shown["context"] == {"auth": "Bearer ***"}


async def test_refused_requests_are_audited_once_a_minute(served: Served) -> None:
    """Threat: probing unseen. A 401 and a 403 are recorded (with the address, the route
    and the subject when known), at most once a minute per address, route and actor; a
    refused action leaves no audit row of the action (it shares its transaction)."""
    app = served.app
    async with httpx.AsyncClient(
        base_url=served.base, headers={"Authorization": "Bearer lg_wrong"}
    ) as stranger:
        for _ in range(5):
            assert (await stranger.get("/api/v1/runs")).status_code == 401
            r = await stranger.post("/api/v1/runs", json={"pipeline": "deploy"})
            assert r.status_code == 401
    token = app.tokens.create("viewer-laptop", "viewer", subject="vera")[1]
    async with httpx.AsyncClient(
        base_url=served.base, headers={"Authorization": f"Bearer {token}"}
    ) as vera:
        for _ in range(3):
            r = await vera.post("/api/v1/runs/nope/cancel")
            assert r.status_code == 403
    async with served.client("operator") as op:
        assert (await op.post("/api/v1/runs/nope/cancel")).status_code == 404
    denied = [
        (e.actor, e.details["route"]) for e in app.store.get_audit() if e.action == "auth.denied"
    ]
    assert sorted(denied) == [
        ("anonymous", "GET /api/v1/runs"),
        ("anonymous", "POST /api/v1/runs"),
        ("vera", "POST /api/v1/runs/nope/cancel"),
    ]
    assert not [e for e in app.store.get_audit() if e.action == "run.cancel"]


async def test_a_live_log_stream_ends_when_its_token_is_revoked(
    served: Served, tmp_path: Path
) -> None:
    """Threat: a revoked token still reading. A stream open on a waiting run ends within
    seconds of the revocation."""
    path = tmp_path / "waits.yaml"
    path.write_text("name: waits\nsteps:\n  - name: gate\n    kind: approval\n")
    served.app.register(load_file(path))
    run = served.app.start_run("waits")
    record, token = served.app.tokens.create("watcher", "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    client = httpx.AsyncClient(base_url=served.base, headers=headers, timeout=30)
    async with client, client.stream("GET", f"/api/v1/runs/{run.id}/logs/stream") as stream:
        served.app.tokens.revoke(record.id)
        started = asyncio.get_running_loop().time()
        text = ""
        async for chunk in stream.aiter_text():
            text += chunk
    assert "event: end" in text and "token revoked" in text
    assert asyncio.get_running_loop().time() - started < 10
