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
