"""The web console: server-rendered pages on the same server, port, auth and services as
REST (``install`` adds them to the API's application)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.console import admin, approvals, channels, pipelines, runs, signin, triggers
from lockgate.console.core import SECURITY_HEADERS

STATIC = Path(__file__).parent / "static"
#: Paths that are not the console's (they keep their own headers).
_NOT_CONSOLE = ("/api/", "/hooks/", "/metrics", "/healthz", "/docs", "/redoc", "/openapi.json")


class SecurityHeaders:
    """Adds the console's security headers (a strict CSP, no framing) to its responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_NOT_CONSOLE):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, sending)


#: Every page's router, one per resource.
ROUTERS = tuple(m.router for m in (signin, runs, approvals, pipelines, triggers, channels, admin))


def install(api: FastAPI) -> None:
    """Serve the console's pages and static files from ``api``."""
    for router in ROUTERS:
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.add_middleware(SecurityHeaders)
