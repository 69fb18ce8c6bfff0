"""The REST API (FastAPI): ``/api/v1``, OpenAPI at ``/docs``, ``/healthz``."""

from __future__ import annotations

import asyncio
import traceback
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from lockgate import __version__
from lockgate.api import errors
from lockgate.api.auth import Caller, require
from lockgate.api.channels import router as channel_router
from lockgate.api.guard import BodyTooLarge, Guard
from lockgate.api.routes import router
from lockgate.app import App
from lockgate.errors import LockgateError
from lockgate.tokens import Role
from lockgate.triggers.webhooks import Answer


def create_api(app: App) -> FastAPI:
    """The ASGI application serving ``app``."""
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
    api.include_router(router)
    api.include_router(channel_router)

    @api.get("/healthz", summary="Liveness and database reachability")
    def healthz() -> Any:
        try:
            app.store.count_active()
        except LockgateError as exc:  # no token here: the detail stays in the log
            return errors.referenced(503, exc.code, exc.message)
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", summary="Prometheus metrics (viewer token)", response_class=Response)
    def metrics(caller: Annotated[Caller, Depends(require(Role.viewer))]) -> Response:
        return Response(app.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def webhook(trigger_id: str, request: Request) -> JSONResponse:
        body = bytearray()
        try:
            async for chunk in request.stream():
                body.extend(chunk)
        except BodyTooLarge as exc:  # counted as it streamed, with or without Content-Length
            app.metrics.webhook_answers.labels("413").inc()
            return errors.error(413, "too_large", str(exc.detail))
        try:
            answer = await deliver(trigger_id, request, bytes(body))
        except Exception as exc:  # never expected; counted and answered like any other
            app.metrics.webhook_answers.labels("500").inc()
            return errors.referenced(500, "internal", "".join(traceback.format_exception(exc)))
        app.metrics.webhook_answers.labels(str(answer.status)).inc()
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    async def deliver(trigger_id: str, request: Request, body: bytes) -> Answer:
        client = request.client.host if request.client else None
        token = request.query_params.get("token")
        checked = await asyncio.to_thread(
            app.webhooks.check, trigger_id, dict(request.headers), body, client, token
        )
        if isinstance(checked, Answer):
            return checked
        outcome: Any
        try:
            # Through the group committer when a worker runs here: concurrent deliveries
            # share transactions the way step checkpoints do.
            outcome = await app.write(checked)
        except LockgateError as exc:
            outcome = exc
        return app.webhooks.answer(checked, outcome)

    for method in ("POST", "PUT", "GET", "DELETE"):
        api.add_api_route(
            "/hooks/{trigger_id}",
            webhook,
            methods=[method],
            operation_id=f"webhook_{method.lower()}",
            summary="Webhook delivery (signed by the trigger's secret; no bearer token)",
        )

    api.add_middleware(Guard, lockgate=app)
    return api
