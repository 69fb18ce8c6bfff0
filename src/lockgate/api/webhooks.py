"""The webhook route: ``/hooks/{trigger_id}``, authenticated by the sender's signature (or
an unsigned provider's URL token), never by a bearer token."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route

from lockgate.api import errors
from lockgate.api.guard import BodyTooLarge
from lockgate.app import App
from lockgate.errors import LockgateError
from lockgate.triggers.webhooks import Answer

#: Bodies up to this size are checked (signature, JSON, filters) on the event loop when the
#: trigger is in memory: well under a millisecond, less than a hop to a thread costs.
INLINE_CHECK_BYTES = 64 * 1024


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
        headers = dict(request.headers)
        if len(body) <= INLINE_CHECK_BYTES and app.webhooks.known(trigger_id):
            # No I/O and a small body: cheaper here than a hop to a thread.
            checked = app.webhooks.check(trigger_id, headers, body, client, token)
        else:
            checked = await asyncio.to_thread(
                app.webhooks.check, trigger_id, headers, body, client, token
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
