"""Stage reads: the manifest a stage serves, per second, against hello-world requests.

    python bench/stage_reads.py --db sqlite
    python bench/stage_reads.py --db postgres        # starts its own PostgreSQL

A server process runs the real API and a worker with a public channel of three stages.
This process first pushes deployments (each flips three stages), then measures, from
``--concurrency`` clients for ``--seconds`` each: the hello-world route (the ceiling), the
stage manifest read (200 with the body), the same read with ``If-None-Match`` (304), and
reads while deployments keep flipping the stage. ``flip_ms`` is the p50 time of one flip
step, from the deployments' own step records.

``reads_per_s`` is the saturated rate (``--concurrency`` clients); ``p50_ms``/``p99_ms`` are
the latency of one client reading in a loop (an unloaded server); ``saturated_p99_ms`` is
the latency under the full load, which is queueing: clients / rate. The last line is JSON:
reads_per_s, p99_ms, hello_world_rps, ratio, flip_ms and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from common import add_db_args, database, percentile, raw_commit_rate
from http_bench import HELLO, Request, load, server_process

OK = frozenset({200})

READ = "/api/v1/channels/bench/stages/prod/manifest"


async def push(http: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    """``n`` pushes; waits for every deployment to end; returns them."""
    pushed = []
    for i in range(n):
        body = {"tenant": f"tenant-{i % 10}", "content": {"flags": [f"flag-{i}"], "on": True}}
        r = await http.post("/api/v1/channels/bench/push", json=body)
        assert r.status_code == 202, r.text
        pushed.append(r.json())
    finished = []
    for d in pushed:
        while True:
            found = (await http.get(f"/api/v1/channels/bench/deployments/{d['id']}")).json()
            if found["run"]["status"] in ("SUCCEEDED", "FAILED", "ROLLED_BACK"):
                finished.append(found)
                break
            await asyncio.sleep(0.02)
    return finished


def flip_times(deployments: list[dict[str, Any]]) -> list[float]:
    """Milliseconds each flip step took, from the runs' step records."""
    return [
        (s["finished_at"] - s["started_at"]) * 1000
        for d in deployments
        for s in d["run"]["steps"]
        if s["name"].endswith(".flip") and s["finished_at"] and s["started_at"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--deployments", type=int, default=30)
    args = parser.parse_args()

    with database(args.db, args.url) as db_url:
        with server_process("stage_reads_server.py", db_url) as (base, token):

            async def run() -> dict[str, Any]:
                auth = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as http:
                    print(f"pushing {args.deployments} deployments ...", file=sys.stderr)
                    deployments = await push(http, args.deployments)
                    etag = (await http.get(READ)).headers["etag"]
                n, s = args.seconds, args.concurrency

                def read() -> Request:
                    return ("GET", READ, b"", {})

                def cached() -> Request:
                    return ("GET", READ, b"", {"If-None-Match": etag})

                print("hello world ...", file=sys.stderr)
                hello_n, _ = await load(base, lambda: HELLO, n, s, OK)
                print("stage reads ...", file=sys.stderr)
                reads_n, lat = await load(base, read, n, s, OK)
                print("stage read latency, one client ...", file=sys.stderr)
                _, one_lat = await load(base, read, n, 1, OK)
                print("stage reads with If-None-Match ...", file=sys.stderr)
                cached_n, cached_lat = await load(base, cached, n, s, frozenset({304}))
                print("stage reads during deployments ...", file=sys.stderr)
                async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as http:
                    flipping = asyncio.create_task(push(http, 15))
                    during_n, during_lat = await load(base, read, n, s, OK)
                    deployments += await flipping
                return {
                    "reads_per_s": round(reads_n / n, 1),
                    "p50_ms": round(percentile(one_lat, 50), 2),
                    "p99_ms": round(percentile(one_lat, 99), 2),
                    "saturated_p50_ms": round(percentile(lat, 50), 2),
                    "saturated_p99_ms": round(percentile(lat, 99), 2),
                    "hello_world_rps": round(hello_n / n, 1),
                    "ratio": round(reads_n / max(1, hello_n), 3),
                    "not_modified_per_s": round(cached_n / n, 1),
                    "not_modified_p99_ms": round(percentile(cached_lat, 99), 2),
                    "reads_during_flips_per_s": round(during_n / n, 1),
                    "reads_during_flips_p99_ms": round(percentile(during_lat, 99), 2),
                    "flip_ms": round(percentile(flip_times(deployments), 50), 2),
                    "flips": len(flip_times(deployments)),
                }

            figures = asyncio.run(run())
        figures = {"db": args.db, **figures, "raw_commits_per_s": round(raw_commit_rate(db_url))}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
