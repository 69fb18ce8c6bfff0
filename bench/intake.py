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
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import add_db_args, database, percentile
from http_bench import HELLO, Request, load, server_process
from intake_server import SECRET

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "webhooks" / "github"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    body = (FIXTURE / "push.json").read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    def delivery_to(trigger: str) -> Callable[[], Request]:
        def delivery() -> Request:
            headers = {
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
            }
            return "POST", f"/hooks/{trigger}", body, headers

        return delivery

    with (
        database(args.db, args.url) as db_url,
        server_process("intake_server.py", db_url) as (base, trigger),
    ):
        delivery = delivery_to(trigger)
        hello_n, _ = asyncio.run(load(base, lambda: HELLO, args.seconds, args.concurrency))
        intake_n, lat = asyncio.run(load(base, delivery, args.seconds, args.concurrency))
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
