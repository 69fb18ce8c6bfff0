"""Shared by the routes: role-checked callers, the App, strict bodies, cursor positions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict

from lockgate.access.tokens import Role
from lockgate.api.auth import Caller, lockgate, require
from lockgate.app import App
from lockgate.core.cursor import decode_cursor
from lockgate.errors import ParamsError

Viewer = Annotated[Caller, Depends(require(Role.viewer))]
Operator = Annotated[Caller, Depends(require(Role.operator))]
Approver = Annotated[Caller, Depends(require(Role.approver))]
Admin = Annotated[Caller, Depends(require(Role.admin))]
Lockgate = Annotated[App, Depends(lockgate)]


class Strict(BaseModel):
    """Request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


def position(cursor: str | None, parts: int) -> tuple[Any, ...] | None:
    """The keyset position in a cursor a list returned (``None`` for the first page)."""
    if not cursor:
        return None
    position = decode_cursor(cursor, parts)
    try:
        return (float(position[0]), *position[1:]) if parts > 1 else (int(position[0]),)
    except (TypeError, ValueError) as exc:
        raise ParamsError(["cursor: not a cursor this API returned"]) from exc
