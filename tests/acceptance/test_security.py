"""Threats met at the door of a real ``lockgate server``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
from servers import lockgate_server

from lockgate import App, Settings

CHUNK = b"x" * 65536


def chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // len(CHUNK)):
        yield CHUNK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def post(url: str, body: Iterator[bytes], token: str | None = None) -> int | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.post(url, content=body, headers=headers, timeout=30).status_code
    except httpx.HTTPError:
        return None  # the server answered and closed while we still sent


def test_unbounded_chunked_bodies_cannot_grow_the_server(db_url: str) -> None:
    """Threat: memory exhaustion by unauthenticated chunked uploads. Four 50 MB chunked
    POSTs without a token leave the server's memory within 20 MB (the token is checked
    before the body is read); with a token, a chunked body past the limit gets 413."""
    app = App(Settings(database_url=db_url))
    app.migrate()
    token = app.tokens.create("op", "operator")[1]
    app.close()
    with lockgate_server({"LOCKGATE_DATABASE_URL": db_url}) as (url, proc):
        httpx.get(f"{url}/healthz")
        before = rss_kib(proc.pid)
        for _ in range(4):
            assert post(f"{url}/api/v1/runs", chunks(50 * 2**20)) in (401, None)
        grown = rss_kib(proc.pid) - before
        assert grown < 20 * 1024, f"server grew by {grown} KiB"
        assert post(f"{url}/api/v1/runs", chunks(4 * 2**20), token) in (413, None)
        answer = httpx.post(
            f"{url}/api/v1/runs",
            content=chunks(2 * 2**20),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
        hook = httpx.post(f"{url}/hooks/nope", content=chunks(2 * 2**20), timeout=30)
        assert hook.status_code == 413
        assert rss_kib(proc.pid) - before < 20 * 1024
        assert os.path.exists(f"/proc/{proc.pid}")


def test_forwarded_headers_are_believed_only_from_configured_proxies(db_url: str) -> None:
    """Threat: spoofing a Gerrit trigger's address allowlist with X-Forwarded-For. By
    default a client's forwarded headers are ignored; with --forwarded-allow-ips they are
    believed from those proxies only."""
    app = App(Settings(database_url=db_url))
    app.migrate()
    trigger = app.webhooks.create(
        provider="gerrit", pipeline="deploy", secret=None, allow_ips=["10.0.0.0/8"]
    )
    token = trigger.url_token
    app.close()
    body = (
        Path(__file__).parents[1] / "fixtures/webhooks/gerrit/patchset-created.json"
    ).read_bytes()
    spoofed = {"X-Forwarded-For": "10.1.2.3"}
    path = f"/hooks/{trigger.id}?token={token}"
    env = {"LOCKGATE_DATABASE_URL": db_url}
    with lockgate_server(env) as (url, _):
        assert httpx.post(url + path, content=body, headers=spoofed).status_code == 404
    with lockgate_server(env, "--forwarded-allow-ips", "127.0.0.1") as (url, _):
        assert httpx.post(url + path, content=body, headers=spoofed).status_code == 202
