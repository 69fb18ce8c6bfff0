"""Admin: API tokens (a new one's secret is shown once; revoke) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from lockgate.app import App
from lockgate.console.core import (
    Acting,
    ConsoleRoute,
    Person,
    acting,
    back,
    lockgate,
    page,
    viewing,
)
from lockgate.tokens import Role

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Admin = Annotated[Person, Depends(viewing(Role.admin))]
Acts = Annotated[Acting, Depends(acting(Role.admin))]
Lockgate = Annotated[App, Depends(lockgate)]


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens(request: Request, who: Admin, lg: Lockgate) -> Response:
    return page(
        request, "tokens.html", title="Tokens", tokens=lg.tokens.list(), roles=list(Role), made=None
    )


@router.post("/admin/tokens", response_class=HTMLResponse)
def create_token(request: Request, act: Acts, lg: Lockgate) -> Response:
    form = act.form
    record, secret = lg.tokens.create(
        form.get("name", ""),
        form.get("role", ""),
        subject=form.get("subject") or None,
        actor=act.person.subject,
    )
    # The secret is in this answer only (not a redirect: it must not land in a URL).
    return page(
        request,
        "tokens.html",
        201,
        title="Tokens",
        tokens=lg.tokens.list(),
        roles=list(Role),
        made=(record, secret),
    )


@router.post("/admin/tokens/{token_id}/revoke")
def revoke(token_id: str, act: Acts, lg: Lockgate) -> Response:
    record = lg.tokens.revoke(token_id, actor=act.person.subject)
    return back("/admin/tokens", f"token {record.name} revoked: its sessions end too")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit(
    request: Request, who: Admin, lg: Lockgate, after: Annotated[int, Query(ge=0)] = 0
) -> Response:
    entries = lg.audit_log(after, 200)
    return page(request, "audit.html", title="Audit log", entries=entries, after=after)
