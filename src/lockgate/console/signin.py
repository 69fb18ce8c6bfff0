"""Signing in (an API token, or a one-time link) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lockgate.access.tokens import Role
from lockgate.console.core import (
    COOKIE,
    Lockgate,
    Posted,
    console_router,
    lockgate,
    page,
    person_of,
    posting,
    safe_next,
    same_origin,
)
from lockgate.errors import Unauthorized
from lockgate.records import SessionRecord

router = console_router()


def _signed_in(request: Request, cookie: str, session: SessionRecord, to: str) -> Response:
    answer = RedirectResponse(safe_next(to), status_code=303)
    answer.set_cookie(
        COOKIE,
        cookie,
        max_age=max(1, int(session.expires_at - session.created_at)),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or lockgate(request).settings.console_secure_cookie,
        path="/",
    )
    return answer


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return RedirectResponse("/runs" if person_of(request) else "/sign-in", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/runs") -> Response:
    return page(request, "sign_in.html", title="Sign in", next=safe_next(next), problem=None)


@router.post("/sign-in")
def sign_in(
    request: Request,
    lg: Lockgate,
    token: Annotated[str, Form(max_length=400)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/runs",
) -> Response:
    same_origin(request)
    lg.sessions.attempt(request.client.host if request.client else None)
    try:
        cookie, session = lg.sessions.sign_in(token)
    except Unauthorized:
        client = request.client.host if request.client else None
        lg.tokens.denied("anonymous", "POST /sign-in", client, "console sign-in refused")
        return page(
            request,
            "sign_in.html",
            401,
            title="Sign in",
            next=safe_next(next),
            problem="That token is not valid (or it was revoked).",
        )
    return _signed_in(request, cookie, session, next)


@router.get("/sign-in/link/{secret}", response_class=HTMLResponse)
def link_page(request: Request, secret: str) -> Response:
    # Opening the link only shows a button: link previews and scanners fetch pages, and
    # must not use up a one-time link.
    return page(request, "sign_in_link.html", title="Sign in", secret=secret)


@router.post("/sign-in/link/{secret}")
def use_link(request: Request, secret: str, lg: Lockgate) -> Response:
    same_origin(request)
    lg.sessions.attempt(request.client.host if request.client else None)
    cookie, session = lg.sessions.redeem(secret)
    return _signed_in(request, cookie, session, "/runs")


@router.post("/sign-out")
def sign_out(act: Annotated[Posted, Depends(posting(Role.viewer))], lg: Lockgate) -> Response:
    lg.sessions.sign_out(act.person.session)
    answer = RedirectResponse("/sign-in", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer
