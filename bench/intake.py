"""Webhook intake: verified, durable deliveries per second, against hello-world requests.

    python bench/intake.py --db sqlite
    python bench/intake.py --db postgres        # starts its own PostgreSQL

A server process runs the real API; a load process (this one) sends signed GitHub push
deliveries, each with a new delivery id, so each is verified, stored and starts a run (the
run is created; no worker executes it). The same server's hello-world route gives the
ceiling. The last line is JSON: deliveries_per_s, p50_ms, p99_ms, hello_world_rps, ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from common import add_db_args, database, percentile
from intake_server import SECRET
from lockgate.testing import free_port

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "webhooks" / "github"


async def load(url: str, make: object, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    """Requests completed in ``seconds`` by ``concurrency`` clients, and their latencies."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(timeout=30) as http:
            while time.monotonic() < deadline:
                method, path, content, headers = make()  # type: ignore[operator]
                t0 = time.perf_counter()
                r = await http.request(method, url + path, content=content, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code in (200, 202), r.text
                done += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    body = (FIXTURE / "push.json").read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    def delivery() -> tuple[str, str, bytes, dict[str, str]]:
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        }
        return "POST", f"/hooks/{trigger}", body, headers

    def hello() -> tuple[str, str, bytes, dict[str, str]]:
        return "GET", "/bench/hello", b"", {}

    with database(args.db, args.url) as db_url:
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "intake_server.py"),
                "--url",
                db_url,
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            trigger = server.stdout.readline().strip()
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.get(base + "/bench/hello", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            hello_n, _ = asyncio.run(load(base, hello, args.seconds, args.concurrency))
            intake_n, lat = asyncio.run(load(base, delivery, args.seconds, args.concurrency))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    figures = {
        "db": args.db,
        "deliveries_per_s": round(intake_n / args.seconds, 1),
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "hello_world_rps": round(hello_n / args.seconds, 1),
    }
    figures["ratio"] = round(figures["deliveries_per_s"] / max(1.0, figures["hello_world_rps"]), 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
