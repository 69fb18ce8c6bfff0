"""The webhook route: ``/hooks/{trigger_id}``, authenticated by the sender's signature (or
an unsigned provider's URL token), never by a bearer token."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lockgate.api import errors
from lockgate.api.guard import BodyTooLarge
from lockgate.app import App
from lockgate.errors import LockgateError
from lockgate.triggers.webhooks import Answer


def install(api: FastAPI, app: App) -> None:
    """Add the webhook route (POST, PUT, GET and DELETE) for ``app`` to ``api``."""

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
