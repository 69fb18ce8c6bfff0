"""The webhook route: ``/hooks/{trigger_id}``, authenticated by the sender's signature (or
an unsigned provider's URL token), never by a bearer token."""

from __future__ import annotations

import traceback

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route

from lockgate.api import errors
from lockgate.api.guard import BodyTooLarge
from lockgate.app import App
from lockgate.triggers.deliveries import Answer


def install(api: FastAPI, app: App) -> None:
    """Add the webhook route (POST, PUT, GET and DELETE) for ``app`` to ``api``."""

    async def webhook(request: Request) -> JSONResponse:
        trigger_id = str(request.path_params["trigger_id"])
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
        return await app.deliveries.receive(trigger_id, dict(request.headers), body, client, token)

    # A plain route, matched before any other: a delivery is the busiest request, and it
    # needs nothing of FastAPI's parameter handling (its one parameter is the path's).
    methods = ["POST", "PUT", "GET", "DELETE"]
    api.router.routes.insert(0, Route("/hooks/{trigger_id}", webhook, methods=methods))

    async def documented(trigger_id: str, request: Request) -> JSONResponse:
        return await webhook(request)

    # The same handler as an API route, for the OpenAPI document (the plain one answers).
    for method in methods:
        api.add_api_route(
            "/hooks/{trigger_id}",
            documented,
            methods=[method],
            operation_id=f"webhook_{method.lower()}",
            summary="Webhook delivery (signed by the trigger's secret; no bearer token)",
        )
