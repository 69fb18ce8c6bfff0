"""The server ``bench/stage_reads.py`` drives: the real API and a worker, as ``lockgate
server`` runs them, with one public channel of three stages and a hello-world route."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn

from lockgate import App, Channel, PushRequest, Settings, Stage
from lockgate.api import create_api


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    """Each tenant's latest flags, and a count: a manifest of a few hundred bytes."""
    tenants = {**manifest.get("tenants", {}), request.tenant: request.content}
    return {"count": manifest.get("count", 0) + 1, "tenants": tenants}


channel = Channel(
    "bench",
    merge=merge,
    stages=[Stage("beta"), Stage("gamma"), Stage("prod")],
    public_read=True,
    queue_poll=0.5,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = App(Settings(database_url=args.url))
    app.migrate()
    app.channels.register(channel)
    _, token = app.tokens.create("bench", "operator")
    api = create_api(app)

    @api.get("/bench/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    print(token, flush=True)

    async def serve() -> None:
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
