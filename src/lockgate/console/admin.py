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
    back,
    console_router,
    page,
)

router = console_router()


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens(request: Request, who: AdminPage) -> Response:
    return page(
        request,
        "tokens.html",
        title="Tokens",
        tokens=who.client.tokens.list(),
        roles=list(Role),
        made=None,
    )


@router.post("/admin/tokens", response_class=HTMLResponse)
def create_token(request: Request, act: Admin) -> Response:
    form = act.form
    record, secret = act.person.client.tokens.create(
        form.get("name", ""), form.get("role", ""), subject=form.get("subject") or None
    )
    # The secret is in this answer only (not a redirect: it must not land in a URL).
    return page(
        request,
        "tokens.html",
        201,
        title="Tokens",
        tokens=act.person.client.tokens.list(),
        roles=list(Role),
        made=(record, secret),
    )


@router.post("/admin/tokens/{token_id}/revoke")
def revoke(token_id: str, act: Admin) -> Response:
    record = act.person.client.tokens.revoke(token_id)
    return back("/admin/tokens", f"token {record.name} revoked: its sessions end too")


@router.get("/admin/sessions", response_class=HTMLResponse)
def sessions(request: Request, who: AdminPage) -> Response:
    return page(
        request,
        "sessions.html",
        title="Sessions",
        sessions=who.client.sessions.list(),
        mine=who.session.ref,
    )


@router.post("/admin/sessions/{ref}/revoke")
def revoke_session(ref: str, act: Admin) -> Response:
    record = act.person.client.sessions.revoke(ref)
    return back("/admin/sessions", f"session of {record.subject} ended")


@router.post("/admin/prune")
def prune(act: Admin) -> Response:
    dry_run = "dry_run" in act.form
    gone = act.person.client.prune(dry_run=dry_run)
    listed = ", ".join(f"{n} {status}" for status, n in sorted(gone.items())) or "none"
    verb = "would delete" if dry_run else "deleted"
    return back("/admin/tokens", f"retention {verb} {sum(gone.values())} runs ({listed})")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit(request: Request, who: AdminPage, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    entries = who.client.audit_log(after, 200)
    return page(request, "audit.html", title="Audit log", entries=entries, after=after)
