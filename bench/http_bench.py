"""Shared by the HTTP benchmarks: the server process, its hello-world ceiling, the load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import uvicorn

from lockgate import App
from lockgate.cli.server import tune_process
from lockgate.server.asgi import create_asgi
from lockgate.testing import free_port

#: ``(method, path, body, headers)`` of one request.
Request = tuple[str, str, bytes, dict[str, str]]
HELLO: Request = ("GET", "/bench/hello", b"", {})


async def load(
    base: str,
    make: Callable[[], Request],
    seconds: float,
    concurrency: int,
    ok: frozenset[int] = frozenset({200, 202}),
) -> tuple[int, list[float]]:
    """Requests completed in ``seconds`` by ``concurrency`` clients, and their latencies (ms)."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while time.monotonic() < deadline:
                method, path, content, headers = make()
                t0 = time.perf_counter()
                r = await http.request(method, path, content=content, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code in ok, (r.status_code, r.text[:200])
                done += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, latencies


@contextlib.contextmanager
def server_process(
    script: str, db_url: str, cpus: set[int] | None = None, extra: Sequence[str] = ()
) -> Iterator[tuple[str, str]]:
    """Run ``bench/<script> --url --port [extra]`` (on ``cpus`` only, if given) until it
    answers; yields (base URL, the first line it printed). Stopped with SIGINT."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / script),
            *("--url", db_url, "--port", str(port), *extra),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if cpus is not None:
        os.sched_setaffinity(server.pid, cpus)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().strip()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + HELLO[1], timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, first
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def serve(app: App, port: int, *, execute: bool = True) -> None:
    """The real API and a worker on one loop, as ``lockgate server`` runs them (writes go
    through the worker's group committer), plus the hello-world route. Without
    ``execute``, the worker knows no pipeline: runs are created and left for workers
    elsewhere (the committer still groups the writes)."""
    tune_process()  # as `lockgate server` and `lockgate worker` do
    api = create_asgi(app)

    @api.get(HELLO[1])
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    # Matched first, like the webhook route: the ceiling is the cheapest request there is.
    api.router.routes.insert(0, api.router.routes.pop())

    async def body() -> None:
        worker = app.worker() if execute else app.worker(concurrency=0)
        await worker.start()
        config = uvicorn.Config(
            api, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await worker.stop()

    asyncio.run(body())
