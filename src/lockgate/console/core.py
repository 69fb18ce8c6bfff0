"""What every console page shares: who is signed in, roles, CSRF, rendering, errors.

Pages are plain HTML forms and links (POST, then redirect); ``static/console.js`` only adds
live updates. Every page reads and acts through the App, like the REST routes, with the
same roles: a viewer is shown no button it may not press, and a POST it forges is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lockgate.access.tokens import Role
from lockgate.app import App
from lockgate.client import Client
from lockgate.console.ansi import ansi_html
from lockgate.console.forms import Field, fields_of
from lockgate.core.params import params_model
from lockgate.errors import Forbidden, LockgateError, RateLimited, Unauthorized
from lockgate.records import SessionRecord
from lockgate.records.views import PendingApproval

#: The session cookie (HttpOnly, SameSite=Lax, Secure over TLS).
COOKIE = "lockgate_session"
#: Every response of the console carries these.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_log = structlog.get_logger("lockgate.console")


def lockgate(request: Request) -> App:
    """The App behind the console."""
    app: App = request.app.state.lockgate
    return app


@dataclass(frozen=True)
class Person:
    """Who is signed in: the subject, the role, the session (and its CSRF secret), and
    lockgate acting as them (``client``: what the pages call)."""

    session: SessionRecord
    client: Client
    #: Whether this person may approve (or resolve) a waiting step now.
    decides: Callable[[PendingApproval], bool]
    role: Role = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.session.role))

    @property
    def subject(self) -> str:
        """Who acts: decisions and audit entries are recorded under this name."""
        return self.session.subject

    @property
    def csrf(self) -> str:
        """The secret every form of this session carries."""
        return self.session.csrf

    @property
    def roles(self) -> list[str]:
        """The role and every role it includes."""
        return self.role.granted()

    def can(self, role: str) -> bool:
        """Whether this person's role grants ``role``."""
        return self.role.includes(Role(role))

    def may_decide(self, pending: PendingApproval) -> bool:
        """Whether this person may approve (or resolve) the waiting step now."""
        return self.decides(pending)


class SignInRequired(Exception):
    """No live session: the page sends the browser to sign in, and back afterwards."""


def person_of(request: Request) -> Person | None:
    """The signed-in person of this request (looked up once per request)."""
    try:
        found: Person | None = request.state.person
    except AttributeError:
        app = lockgate(request)
        session = app.sessions.find(request.cookies.get(COOKIE))
        found = None
        if session is not None:
            granted = Role(session.role).granted()
            view = app.acting(session.subject, granted)
            found = Person(session, view, view.may_decide)
        request.state.person = found
    return found


def viewing(role: Role) -> Callable[[Request], Person]:
    """A dependency for pages: the signed-in person, who must hold ``role``."""

    def check(request: Request) -> Person:
        who = person_of(request)
        if who is None:
            raise SignInRequired()
        if not who.role.includes(role):
            raise Forbidden(f"this page needs the {role.value} role; you are {who.role.value}")
        return who

    return check


@dataclass(frozen=True)
class Posted:
    """A checked form post: who sent it, and its fields."""

    person: Person
    form: Mapping[str, str]
    lists: Mapping[str, list[str]]


def posting(role: Role) -> Callable[[Request], Awaitable[Posted]]:
    """A dependency for actions (POST): a signed-in person holding ``role`` whose form
    carries this session's CSRF secret. Anything else is refused (403), and nothing acts."""

    async def check(request: Request) -> Posted:
        who = person_of(request)
        if who is None:
            raise SignInRequired()
        form = await request.form()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given, who.csrf):
            raise Forbidden("the form's CSRF token is missing or wrong: reload the page")
        if not who.role.includes(role):
            raise Forbidden(f"this needs the {role.value} role; you are {who.role.value}")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        lists = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
        return Posted(who, fields, lists)

    return check


def console_router() -> APIRouter:
    """A router for one resource's pages (their errors answer with pages)."""
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False)


Lockgate = Annotated[App, Depends(lockgate)]
#: A page for viewers and up; one for admins.
Viewer = Annotated[Person, Depends(viewing(Role.viewer))]
AdminPage = Annotated[Person, Depends(viewing(Role.admin))]
#: An action (a form post with its CSRF token) for operators, approvers, admins.
Operator = Annotated[Posted, Depends(posting(Role.operator))]
Approver = Annotated[Posted, Depends(posting(Role.approver))]
Admin = Annotated[Posted, Depends(posting(Role.admin))]


def same_origin(request: Request) -> None:
    """Refuse a sign-in posted from another site (there is no session CSRF secret yet)."""
    origin = request.headers.get("origin")
    # ``null`` is what a sandboxed frame or a data: page sends: another site, whoever.
    if origin and (origin == "null" or urlsplit(origin).netloc != request.url.netloc):
        raise Forbidden("sign-in must be posted from this site")


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


# -- rendering ----------------------------------------------------------------------------


#: What a missing value shows as.
NONE = "\u2013"


def _when(ts: float | None) -> str:
    if ts is None:
        return NONE
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return NONE
    seconds = max(0.0, end - start)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


templates = Environment(
    loader=PackageLoader("lockgate.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _left(seconds: float) -> str:
    if seconds <= 0:
        return "no time"
    return _duration(0.0, seconds)


def input_fields(pending: PendingApproval) -> list[Field]:
    """The fields of the input an approval asks for (none for most)."""
    specs = pending.policy.input
    model = params_model(f"{pending.approval.step}_input", specs) if specs else None
    return fields_of(model.model_json_schema()) if model is not None else []


templates.filters.update(when=_when, iso=_iso, pretty=_pretty, ansi=ansi_html, quote=quote)
templates.globals.update(duration=_duration, left=_left, input_fields=input_fields)

NAV = [
    ("/runs", "Runs", Role.viewer),
    ("/approvals", "Approvals", Role.viewer),
    ("/pipelines", "Pipelines", Role.viewer),
    ("/triggers", "Triggers", Role.viewer),
    ("/channels", "Channels", Role.viewer),
    ("/admin/tokens", "Admin", Role.admin),
]


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page rendered with ``context``, the signed-in person and the navigation."""
    who = person_of(request)
    nav = [(href, label) for href, label, role in NAV if who is not None and who.can(role)]
    sessions = lockgate(request).sessions
    flash = sessions.take_flash(who.session, request.url.path) if who is not None else None
    body = templates.get_template(template).render(
        request=request, person=who, nav=nav, path=request.url.path, flash=flash, **context
    )
    return HTMLResponse(body, status_code=status)


class Back(RedirectResponse):
    """After an action, to the page it changed, with a note of what it did."""

    def __init__(self, to: str, note: str | None) -> None:
        super().__init__(to, status_code=303)
        self.note = note


def back(to: str, note: str | None = None) -> RedirectResponse:
    """After an action: see the page it changed (``note`` is shown there once, kept with
    the session: a URL parameter would let anyone put words on a console page)."""
    return Back(to, note)


# -- errors -------------------------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """Console routes answer errors with pages, not JSON: sign in first, forbidden, not
    found, refused (every problem listed), conflict."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
                who = person_of(request)
                if isinstance(response, Back) and response.note and who is not None:
                    await asyncio.to_thread(
                        lockgate(request).sessions.flash,
                        who.session,
                        response.note,
                        urlsplit(response.headers["location"]).path,
                    )
                return response
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = request.headers.get("referer") or "/runs"
                    target = urlsplit(target).path or "/runs"
                return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
            except RequestValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                    for e in exc.errors()
                ]
                # Rendering may read the session, and a refusal is audited: off the loop.
                return await asyncio.to_thread(
                    page,
                    request,
                    "error.html",
                    422,
                    title="Refused",
                    problems=problems,
                    message="the request was refused",
                )
            except LockgateError as exc:
                return await asyncio.to_thread(_error_page, request, exc)

        return answer


def _error_page(request: Request, exc: LockgateError) -> Response:
    status = exc.http_status
    if isinstance(exc, Forbidden | Unauthorized):
        who = person_of(request)
        client = request.client.host if request.client else None
        lockgate(request).tokens.denied(
            who.subject if who else "anonymous",
            f"{request.method} {request.url.path}",
            client,
            exc.message,
        )
    if status >= 500:
        _log.error("console page failed", code=exc.code, detail=exc.message)
        message = "the server could not do that now; see its log"
    else:
        message = exc.message
    problems = list(getattr(exc, "problems", []) or [])
    titles = {403: "Not allowed", 404: "Not found", 409: "Not now", 401: "Sign in"}
    answer = page(
        request,
        "error.html",
        status,
        title=titles.get(status, "Refused" if status < 500 else "Error"),
        message=message,
        problems=problems,
    )
    if isinstance(exc, RateLimited):
        answer.headers["Retry-After"] = str(exc.details["retry_after"])
    return answer
