"""The server ``bench/intake.py`` drives: the real API and a worker, as ``lockgate server``
runs them, plus a webhook trigger and a hello-world route."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).parent))

from bench_pipeline import bench
from lockgate import App, Settings
from lockgate.api import create_api

SECRET = "bench-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = App(Settings(database_url=args.url))
    app.migrate()
    app.register(bench)
    app.webhooks.rate = (1e9, 1e9)  # measure intake, not the rate limit
    trigger = app.webhooks.create("github", "bench", secret=SECRET, params={"n": 0})
    api = create_api(app)

    @api.get("/bench/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    print(trigger.id, flush=True)

    async def serve() -> None:
        # As `lockgate server` does: a worker on the same loop, whose group committer the
        # webhook writes go through.
        worker = app.worker()
        await worker.start()
        config = uvicorn.Config(
            api, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await worker.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
