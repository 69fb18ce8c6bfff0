"""Bearer tokens and roles, checked on every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from lockgate.app import App
from lockgate.errors import Forbidden, Unauthorized
from lockgate.tokens import Role


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's subject (the person or machine it acts for) and role."""

    name: str
    role: Role

    @property
    def roles(self) -> list[str]:
        """The caller's role and every role it includes."""
        return self.role.granted()


def lockgate(request: Request) -> App:
    """The App behind this API."""
    app: App = request.app.state.lockgate
    return app


def require(role: Role) -> Callable[[Request], Caller]:
    """A dependency that admits callers whose token grants ``role``."""

    def check(request: Request) -> Caller:
        tokens = lockgate(request).tokens
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send Authorization: Bearer <token>")
        record = tokens.authenticate(token.strip())
        caller = Caller(record.identity, Role(record.role))
        request.state.caller = caller  # who to name if the request is refused later
        if not caller.role.includes(role):
            raise Forbidden(f"this needs the {role.value} role; the token has {record.role}")
        tokens.touch(record, f"{request.method} {request.url.path}")
        return caller

    return check
