"""The server ``bench/stage_reads.py`` drives: the real API and a worker, as ``lockgate
server`` runs them, with one public channel of three stages and a hello-world route."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from http_bench import serve
from lockgate import App, Channel, PushRequest, Settings, Stage


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
    print(token, flush=True)
    serve(app, args.port)


if __name__ == "__main__":
    main()
