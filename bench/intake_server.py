"""The server ``bench/intake.py`` drives: the real API and a worker, as ``lockgate server``
runs them, plus a webhook trigger and a hello-world route."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_pipeline import bench
from http_bench import serve
from lockgate import App, Settings

SECRET = "bench-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--no-execute", action="store_true", help="create the runs, leave them to other workers"
    )
    args = parser.parse_args()
    # Measure intake, not the rate limit.
    app = App(Settings(database_url=args.url, webhook_rate=1e9, webhook_burst=10**9))
    app.migrate()
    app.register(bench)
    trigger = app.webhooks.create(
        provider="github", pipeline="bench", secret=SECRET, params={"n": 0}
    )
    print(trigger.id, flush=True)
    serve(app, args.port, execute=not args.no_execute)


if __name__ == "__main__":
    main()
