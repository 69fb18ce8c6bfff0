"""Cost growth: what a claim, a runs list, a stage read and a webhook delivery cost with
10,000, 100,000 and 1,000,000 runs in history.

    python bench/growth.py --db sqlite
    python bench/growth.py --db postgres                  # starts its own PostgreSQL
    python bench/growth.py --db postgres --sizes 10000,100000

For each size, a fresh database is filled with that many finished runs (three steps and four
events each, as ``bench/console.py`` fills it), then timed in this process, through the
App as the REST routes call it:

- ``claim``: a worker's claim of one due run (``Claim`` with a fresh lease), the runs
  started just before;
- ``runs_first_page`` and ``runs_deep_cursor``: the runs list, newest first, 50 a page, at
  the top and from a cursor nine tenths of the way back;
- ``stage_read``: a channel stage's manifest;
- ``webhook_intake``: a signed GitHub push checked and written (delivery and run).

One JSON line per size and operation: ``size``, ``op``, ``p50_ms``, ``p95_ms`` and
``vs_first`` (the p50 against the first size's); then one line with the raw commit rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import percentile, raw_commit_rate
from console import BASE_TIME, fill
from lockgate import App, Channel, Pipeline, PushRequest, Settings, Stage, StepContext, step
from lockgate.store.leases import Claim
from lockgate.testing import PostgresServer
from lockgate.triggers.deliveries import Answer

SECRET = "growth-secret-0123456789"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "webhooks" / "github"


@step
def noop(ctx: StepContext) -> None:
    pass


growth = Pipeline("growth", [noop])


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    return {"count": manifest.get("count", 0) + 1, "last": request.content}


channel = Channel("growth", merge=merge, stages=[Stage("prod")], queue_poll=0.1)


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(percentile(times, 50), 3), "p95_ms": round(percentile(times, 95), 3)}


async def flip_once(app: App) -> None:
    """One push, run by a worker of this process until the stage has flipped."""
    worker = app.worker()
    await worker.start()
    try:
        deployment = app.channels.push("growth", "tenant", {"on": True})
        await app.wait(deployment.run_id, timeout=60)
    finally:
        await worker.stop()


def measure(url: str, size: int, repeat: int) -> list[dict[str, Any]]:
    app = App(Settings(database_url=url, webhook_rate=1e9, webhook_burst=10**9))
    app.migrate()
    fill(app, size, log_lines=10, approvals=0)
    app.register(growth)
    app.channels.register(channel)
    asyncio.run(flip_once(app))
    version = app.registry.get("growth").version
    found: list[dict[str, Any]] = []

    for _ in range(repeat + 1):
        app.start_run("growth")

    def claim() -> None:
        [_] = app.store.apply(Claim("growth-bench", [version], 1, 60.0))

    found.append({"op": "claim", **timed(claim, repeat)})
    found.append({"op": "runs_first_page", **timed(lambda: app.list_runs(limit=50), repeat)})
    deep = size // 10
    cursor = (BASE_TIME + deep * 0.01, f"{deep:032d}")
    found.append(
        {
            "op": "runs_deep_cursor",
            **timed(lambda: app.list_runs(limit=50, before=cursor), repeat),
        }
    )
    found.append(
        {"op": "stage_read", **timed(lambda: app.channels.stage_manifest("growth", "prod"), repeat)}
    )
    trigger = app.webhooks.create(provider="github", pipeline="growth", secret=SECRET, params={})
    push = json.loads((FIXTURE / "push.json").read_text())
    signed = []  # distinct pushes, signed before the clock starts
    for _ in range(repeat + 1):
        body = json.dumps({**push, "after": uuid.uuid4().hex + "0" * 8}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed.append((body, signature))

    def deliver() -> None:
        body, signature = signed.pop()
        headers = {
            "x-github-event": "push",
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": signature,
            "content-type": "application/json",
        }
        checked = app.deliveries.check(trigger.id, headers, body, "127.0.0.1")
        assert not isinstance(checked, Answer), checked
        answer = app.deliveries.answer(checked, app.store.apply(checked))
        assert answer.status == 202, answer

    found.append({"op": "webhook_intake", **timed(deliver, repeat)})
    app.close()
    return found


@contextlib.contextmanager
def databases(db: str) -> Iterator[Callable[[str], str]]:
    """A maker of fresh, empty databases by name."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lockgate-growth-") as tmp:
            yield lambda name: f"sqlite:///{Path(tmp) / name}.db"
        return
    with PostgresServer(fsync=True) as server:
        yield server.create_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=200, help="timings per operation")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    first: dict[str, float] = {}
    with databases(args.db) as make:
        url = ""
        for size in sizes:
            url = make(f"growth_{size}")
            t0 = time.perf_counter()
            rows = measure(url, size, args.repeat)
            for row in rows:
                base = first.setdefault(row["op"], row["p50_ms"])
                vs_first = round(row["p50_ms"] / base, 2) if base else None
                print(
                    json.dumps({"db": args.db, "size": size, **row, "vs_first": vs_first}),
                    flush=True,
                )
            print(
                json.dumps({"db": args.db, "size": size, "s": round(time.perf_counter() - t0)}),
                file=sys.stderr,
                flush=True,
            )
        print(json.dumps({"db": args.db, "raw_commits_per_s": round(raw_commit_rate(url), 1)}))


if __name__ == "__main__":
    main()
