"""The REST API (FastAPI): ``/api/v1``, OpenAPI at ``/docs``, ``/healthz``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from lockgate import __version__
from lockgate.api import errors
from lockgate.api.auth import Caller, require
from lockgate.api.channels import router as channel_router
from lockgate.api.routes import router
from lockgate.app import App
from lockgate.errors import LockgateError
from lockgate.tokens import Role
from lockgate.triggers.webhooks import Answer

#: Request bodies larger than this are refused with 413 before they are read.
MAX_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """Refuse oversized requests from their Content-Length, before reading them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                response = errors.error(
                    413, "too_large", f"request bodies are limited to {self.limit} bytes"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_api(app: App) -> FastAPI:
    """The ASGI application serving ``app``."""
    api = FastAPI(
        title="lockgate",
        version=__version__,
        description="Durable deployment pipelines. Authenticate with `Authorization: Bearer`.",
    )
    api.state.lockgate = app
    errors.install(api)
    api.include_router(router)
    api.include_router(channel_router)

    @api.get("/healthz", summary="Liveness and database reachability")
    def healthz() -> dict[str, Any]:
        app.store.count_active()
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", summary="Prometheus metrics (viewer token)", response_class=Response)
    def metrics(caller: Annotated[Caller, Depends(require(Role.viewer))]) -> Response:
        return Response(app.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def webhook(trigger_id: str, request: Request) -> JSONResponse:
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:  # a chunked body without Content-Length
                return errors.error(
                    413, "too_large", f"bodies are limited to {MAX_BODY_BYTES} bytes"
                )
        client = request.client.host if request.client else None
        checked = await asyncio.to_thread(
            app.webhooks.check, trigger_id, dict(request.headers), bytes(body), client
        )
        if isinstance(checked, Answer):
            answer = checked
        else:
            outcome: Any
            try:
                # Through the group committer when a worker runs here: concurrent deliveries
                # share transactions the way step checkpoints do.
                outcome = await app.write(checked)
            except LockgateError as exc:
                outcome = exc
            answer = app.webhooks.answer(checked, outcome)
        app.metrics.webhook_answers.labels(str(answer.status)).inc()
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    for method in ("POST", "PUT", "GET", "DELETE"):
        api.add_api_route(
            "/hooks/{trigger_id}",
            webhook,
            methods=[method],
            operation_id=f"webhook_{method.lower()}",
            summary="Webhook delivery (signed by the trigger's secret; no bearer token)",
        )

    api.add_middleware(BodyLimit)
    return api
