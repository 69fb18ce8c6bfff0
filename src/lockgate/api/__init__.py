"""The REST API (FastAPI): ``/api/v1``, OpenAPI at ``/docs``, ``/healthz``, ``/metrics`` and the
webhook intake ``/hooks``; :func:`lockgate.server.asgi.create_asgi` serves it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lockgate import __version__
from lockgate.access.tokens import Role
from lockgate.api import admin, approvals, errors, pipelines, runs, triggers, webhooks
from lockgate.api.auth import Caller, require
from lockgate.api.channels import router as channel_router
from lockgate.app import App
from lockgate.errors import LockgateError


def create_api(app: App) -> FastAPI:
    """The routes serving ``app``, without the guard that authenticates their callers: serve
    :func:`lockgate.server.asgi.create_asgi`, which adds it (and the console)."""
    docs = app.settings.api_docs
    api = FastAPI(
        title="lockgate",
        version=__version__,
        description="Durable deployment pipelines. Authenticate with `Authorization: Bearer`.",
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    api.state.lockgate = app
    errors.install(api)
    # First: a delivery is the busiest request, and routes are matched in order.
    webhooks.install(api, app)
    for module in (pipelines, runs, approvals, triggers, admin):
        api.include_router(module.router)
    api.include_router(channel_router)

    @api.get("/healthz", summary="Liveness and database reachability")
    def healthz() -> Any:
        try:
            app.check_database()
        except LockgateError as exc:  # no token here: the detail stays in the log
            return errors.referenced(503, exc.code, exc.message)
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", summary="Prometheus metrics (viewer token)", response_class=Response)
    def metrics(caller: Annotated[Caller, Depends(require(Role.viewer))]) -> Response:
        return Response(app.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return api
