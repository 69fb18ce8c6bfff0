"""What every request meets before a route reads its body.

- Bodies are counted as they stream, on every route: past the limit the request is refused
  with 413, whether or not it declared a ``Content-Length``.
- A request with a body to the API must carry a credential that authenticates (a token, or
  a channel's push token on its push route) before one byte of that body is read: an
  unauthenticated client cannot make the server buffer anything.
"""

from __future__ import annotations

import asyncio
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.api import errors
from lockgate.api.auth import AUTHENTICATED, bearer
from lockgate.app import App
from lockgate.errors import LockgateError

#: Request bodies larger than this are refused with 413.
MAX_BODY_BYTES = 1024 * 1024

_PUSH = re.compile(r"^/api/v1/channels/([^/]+)/push$")
_WITH_BODY = {"POST", "PUT", "PATCH"}


class BodyTooLarge(HTTPException):
    """The body grew past the limit while it streamed."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


class Guard:
    """Body limit (streamed bytes, not just ``Content-Length``) and authentication before
    the body of an API request is read."""

    def __init__(self, app: ASGIApp, lockgate: App, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.lockgate = lockgate
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send, 413, "too_large", self._too_large())
            return
        path: str = scope["path"]
        if path.startswith("/api/") and scope["method"] in _WITH_BODY:
            problem = await asyncio.to_thread(self._authenticate, scope, headers)
            if problem is not None:
                client = scope.get("client")
                route = f"{scope['method']} {path}"
                await asyncio.to_thread(
                    self.lockgate.tokens.denied,
                    "anonymous",
                    route,
                    client[0] if client else None,
                    problem,
                )
                await self._refuse(scope, receive, send, 401, "unauthorized", problem)
                return
        await self.app(scope, self._counting(receive), send)

    def _too_large(self) -> str:
        return f"request bodies are limited to {self.limit} bytes"

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted

    def _authenticate(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        """``None`` when the request carries a credential that authenticates; an API token
        is left in the request's state, so that the route's role check does not look it up
        again."""
        token = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        if not token:
            return "send Authorization: Bearer <token>"
        push = _PUSH.match(scope["path"])
        try:
            if push is not None and token.startswith("lgp_"):
                self.lockgate.channels.check_push_token(push.group(1), token)
            else:
                record = self.lockgate.tokens.authenticate(token)
                scope.setdefault("state", {})[AUTHENTICATED] = record
        except LockgateError as exc:
            return exc.message
        return None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        response = errors.error(status, code, message)
        # Do not read the body; the connection closes after the answer.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
