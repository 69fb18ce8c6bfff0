"""Threat: text no database stores (a lone surrogate, a NUL) sent through a door, failing
the write with a 500, or stored and then failing every listing that reads it. Every door
refuses it with a 4xx naming the field; a bad row already stored reads back with U+FFFD."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from api_support import Served
from sqlalchemy import update

from lockgate.console.core import COOKIE
from lockgate.examples.flags import flags
from lockgate.store import schema

SECRET = "s3cret-for-tests"
SURROGATE = b'"\\ud800"'  # JSON for a lone surrogate
NUL = b'"a\\u0000b"'  # JSON for text with a NUL


def body_with(value: bytes) -> bytes:
    return b'{"pipeline": "deploy", "params": {"env": ' + value + b', "replicas": 1}}'


async def test_rest_refuses_unstorable_params_naming_the_field(served: Served) -> None:
    async with served.client("operator") as op:
        for value, why in ((SURROGATE, "lone surrogate"), (NUL, "NUL")):
            r = await op.post(
                "/api/v1/runs",
                content=body_with(value),
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 422, r.text
            assert "params.env" in r.text and why in r.text
        key = b'{"pipeline": "deploy", "params": {"env": "x", "\\udc80": 1}}'
        r = await op.post("/api/v1/runs", content=key, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "a key holds a lone surrogate" in r.text
        context = b'{"pipeline": "deploy", "params": {"env": "x"}, "context": {"k": "\\udfff"}}'
        r = await op.post(
            "/api/v1/runs", content=context, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and "context.k" in r.text
        assert (await op.get("/api/v1/runs")).status_code == 200
    assert served.app.list_runs() == []


async def test_a_console_form_refuses_a_nul(served: Served) -> None:
    cookie, session = served.app.sessions.sign_in(served.tokens["operator"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        page = await browser.post(
            "/pipelines/default/deploy/start",
            data={"csrf": session.csrf, "param.env": "a\x00b", "param.replicas": "1"},
        )
        assert page.status_code == 422 and "params.env" in page.text
    assert served.app.list_runs() == []


async def test_webhook_and_push_bodies_are_refused(served: Served) -> None:
    async with served.client("admin") as admin:
        made = await admin.post(
            "/api/v1/triggers",
            json={
                "provider": "github",
                "pipeline": "deploy",
                "secret": SECRET,
                "params": {"env": "${event.branch}"},
            },
        )
    trigger = made.json()["id"]
    body = (
        b'{"ref": "refs/heads/main", "repository": {"full_name": "a/b"}, "x": ' + SURROGATE + b"}"
    )
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    async with served.client(None) as sender:
        r = await sender.post(f"/hooks/{trigger}", content=body, headers=headers)
    assert r.status_code == 400 and "body.x" in r.text and "surrogate" in r.text
    served.app.channels.register(flags)
    async with served.client("operator") as op:
        push = b'{"tenant": "acme", "content": {"values": [' + NUL + b"]}}"
        r = await op.post(
            "/api/v1/channels/flags/push",
            content=push,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert "content.values[0]" in r.text and "NUL" in r.text
    assert served.app.list_runs() == []


async def test_a_bad_row_already_stored_does_not_break_a_listing(served: Served) -> None:
    """A row written before the doors checked (or by hand) reads back with U+FFFD."""
    good = served.app.start_run("deploy", {"env": "prod"})
    bad = served.app.start_run("deploy", {"env": "prod"})
    stored = '{"env":"\\ud800"}'  # the escaped form a driver may hold
    served.app.store.apply(_Raw(bad.id, stored))
    async with served.client("viewer") as viewer:
        listing = await viewer.get("/api/v1/runs")
        assert listing.status_code == 200, listing.text
        by_id = {r["id"]: r for r in listing.json()["runs"]}
        assert by_id[bad.id]["params"]["env"] == "\ufffd"
        assert by_id[good.id]["params"]["env"] == "prod"
        one = await viewer.get(f"/api/v1/runs/{bad.id}")
        assert one.status_code == 200 and json.loads(one.text)["params"] == {"env": "\ufffd"}


class _Raw:
    """Write a run's params as given, past every check (a row from an older version)."""

    def __init__(self, run_id: str, text: str) -> None:
        self.run_id, self.text = run_id, text

    def apply(self, tx: object) -> None:
        from sqlalchemy import literal_column

        conn = tx.conn  # type: ignore[attr-defined]
        column = literal_column(f"'{self.text}'")
        if conn.dialect.name == "postgresql":
            column = literal_column(f"'{self.text}'::json")
        conn.execute(
            update(schema.runs).where(schema.runs.c.id == self.run_id).values(params=column)
        )
