"""Admin: API tokens (a new one's secret is shown once; revoke), console sessions (list,
end), retention and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response

from lockgate.access.tokens import Role
from lockgate.console.core import (
    Admin,
    AdminPage,
    Lockgate,
    back,
    console_router,
    page,
)

router = console_router()


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens(request: Request, who: AdminPage, lg: Lockgate) -> Response:
    return page(
        request, "tokens.html", title="Tokens", tokens=lg.tokens.list(), roles=list(Role), made=None
    )


@router.post("/admin/tokens", response_class=HTMLResponse)
def create_token(request: Request, act: Admin, lg: Lockgate) -> Response:
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
def revoke(token_id: str, act: Admin, lg: Lockgate) -> Response:
    record = lg.tokens.revoke(token_id, actor=act.person.subject)
    return back("/admin/tokens", f"token {record.name} revoked: its sessions end too")


@router.get("/admin/sessions", response_class=HTMLResponse)
def sessions(request: Request, who: AdminPage, lg: Lockgate) -> Response:
    return page(
        request,
        "sessions.html",
        title="Sessions",
        sessions=lg.sessions.list(),
        mine=who.session.ref,
    )


@router.post("/admin/sessions/{ref}/revoke")
def revoke_session(ref: str, act: Admin, lg: Lockgate) -> Response:
    record = lg.sessions.revoke(ref, actor=act.person.subject)
    return back("/admin/sessions", f"session of {record.subject} ended")


@router.post("/admin/prune")
def prune(act: Admin, lg: Lockgate) -> Response:
    dry_run = "dry_run" in act.form
    gone = lg.retention.prune(dry_run=dry_run, actor=act.person.subject)
    listed = ", ".join(f"{n} {status}" for status, n in sorted(gone.items())) or "none"
    verb = "would delete" if dry_run else "deleted"
    return back("/admin/tokens", f"retention {verb} {sum(gone.values())} runs ({listed})")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit(
    request: Request, who: AdminPage, lg: Lockgate, after: Annotated[int, Query(ge=0)] = 0
) -> Response:
    entries = lg.audit_log(after, 200)
    return page(request, "audit.html", title="Audit log", entries=entries, after=after)
