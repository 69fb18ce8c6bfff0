"""Bearer tokens and roles, checked on every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from lockgate.access.tokens import Role
from lockgate.app import App
from lockgate.client import Client
from lockgate.errors import Forbidden, Unauthorized
from lockgate.records import TokenRecord


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's subject (the person or machine it acts for) and role,
    and lockgate acting as them (``client``: what the routes call)."""

    name: str
    role: Role
    client: Client

    @property
    def roles(self) -> list[str]:
        """The caller's role and every role it includes."""
        return self.role.granted()


def lockgate(request: Request) -> App:
    """The App behind this API."""
    app: App = request.app.state.lockgate
    return app


def bearer(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``""``."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


#: Where the guard leaves the token it authenticated before the body (read once).
AUTHENTICATED = "lockgate_token"


def require(role: Role) -> Callable[[Request], Caller]:
    """A dependency that admits callers whose token grants ``role``."""

    def check(request: Request) -> Caller:
        tokens = lockgate(request).tokens
        record: TokenRecord | None = request.scope.get("state", {}).get(AUTHENTICATED)
        if record is None:
            token = bearer(request.headers.get("Authorization", ""))
            if not token:
                raise Unauthorized("send Authorization: Bearer <token>")
            record = tokens.authenticate(token)
        app = lockgate(request)
        role_of = Role(record.role)
        caller = Caller(record.identity, role_of, app.acting(record.identity, role_of.granted()))
        request.state.caller = caller  # who to name if the request is refused later
        if not caller.role.includes(role):
            raise Forbidden(f"this needs the {role.value} role; the token has {record.role}")
        tokens.touch(record, f"{request.method} {request.url.path}")
        return caller

    return check
