"""The ASGI application of ``lockgate server``, assembled in one place: the REST API with the
webhook intake, the web console, the request guard in front of both, and a span per request
when tracing is on; and the uvicorn server that serves it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from lockgate import console
from lockgate.api import create_api
from lockgate.api.guard import Guard
from lockgate.app import App


def create_asgi(app: App) -> FastAPI:
    """Everything ``lockgate server`` serves for ``app``, on one ASGI application."""
    asgi = create_api(app)
    console.install(asgi)
    # Outermost: bodies are bounded, and tokens and rates checked, before any route runs.
    asgi.add_middleware(Guard, lockgate=app)
    app.tracer.instrument(asgi, app.mask)  # a span per request, when tracing is on
    return asgi


def uvicorn_server(app: App, listen: tuple[str, int]) -> Any:
    """A uvicorn server for :func:`create_asgi` that leaves signal handling (and exit codes)
    to the caller."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn would re-raise SIGTERM after its shutdown and kill the process before
            # the workers stop; lockgate handles the signals itself and exits 0.
            yield

    proxies = list(app.settings.forwarded_allow_ips)
    config = uvicorn.Config(
        create_asgi(app),
        host=listen[0],
        port=listen[1],
        log_level="warning",
        lifespan="off",
        # Forwarded headers only from the proxies named in settings (none by default).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
    )
    return Server(config)
