"""Every console route, signed out and with each role: the same roles as REST."""

from __future__ import annotations

import re

from api_support import Served

from lockgate.console import ROUTERS
from lockgate.console.core import COOKIE, ConsoleRoute

#: The role each console route needs; the sign-in pages need none.
REQUIRED = {
    ("GET", "/"): None,
    ("GET", "/sign-in"): None,
    ("POST", "/sign-in"): None,
    ("GET", "/sign-in/link/{secret}"): None,
    ("POST", "/sign-in/link/{secret}"): None,
    ("POST", "/sign-out"): "viewer",
    ("GET", "/runs"): "viewer",
    ("GET", "/runs/{run_id}"): "viewer",
    ("POST", "/runs/{run_id}/cancel"): "operator",
    ("POST", "/runs/{run_id}/rerun"): "operator",
    ("GET", "/runs/{run_id}/logs"): "viewer",
    ("GET", "/runs/{run_id}/logs.txt"): "viewer",
    ("GET", "/runs/{run_id}/live"): "viewer",
    ("GET", "/approvals"): "viewer",
    ("POST", "/runs/{run_id}/decisions"): "approver",
    ("POST", "/runs/{run_id}/resolve"): "operator",
    ("GET", "/pipelines"): "viewer",
    ("GET", "/pipelines/{namespace}/{name}"): "viewer",
    ("POST", "/pipelines/{namespace}/{name}/start"): "operator",
    ("GET", "/triggers"): "viewer",
    ("GET", "/triggers/{kind}/new"): "admin",
    ("POST", "/triggers/{kind}/new"): "admin",
    ("GET", "/triggers/{kind}/{row_id}/edit"): "admin",
    ("POST", "/triggers/{kind}/{row_id}/edit"): "admin",
    ("GET", "/triggers/{kind}/{row_id}"): "viewer",
    ("POST", "/triggers/{kind}/{row_id}/{action}"): "admin",
    ("POST", "/triggers/webhooks/{row_id}/rotate-secret"): "admin",
    ("POST", "/deliveries/{delivery_id}/redeliver"): "admin",
    ("GET", "/channels"): "viewer",
    ("GET", "/channels/{name}"): "viewer",
    ("GET", "/channels/{name}/diff"): "viewer",
    ("POST", "/channels/{name}/stages/{stage}/{action}"): "operator",
    ("GET", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens/{token_id}/revoke"): "admin",
    ("GET", "/admin/sessions"): "admin",
    ("POST", "/admin/sessions/{ref}/revoke"): "admin",
    ("GET", "/admin/audit"): "admin",
    ("POST", "/admin/prune"): "admin",
}
ROLES = ["viewer", "operator", "approver", "admin"]


async def test_every_console_route_checks_the_session_the_role_and_csrf(served: Served) -> None:
    """Signed out, a page sends the browser to sign in and an action does nothing; signed
    in, a role below the route's is refused (403) even with the right CSRF token, and an
    action without the CSRF token is refused for every role."""
    routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, ConsoleRoute)
        for method in route.methods
    }
    assert routes == set(REQUIRED), "a console route was added or removed: update REQUIRED"
    sessions = {}
    for role in ROLES:
        cookie, session = served.app.sessions.sign_in(served.tokens[role])
        sessions[role] = (cookie, session.csrf)
    # Signing out ends the session the later routes use: it goes last.
    for (method, path), needed in sorted(REQUIRED.items(), key=lambda r: r[0][1] == "/sign-out"):
        url = re.sub(r"\{[a-z_]+\}", "x", path)
        url = url.replace("/triggers/x/x/x", "/triggers/webhooks/x/pause")
        url = url.replace("/deliveries/x/", "/deliveries/0/")
        if needed is None:
            continue
        async with served.client(None) as anon:
            answer = await anon.request(method, url)
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/sign-in?next="), (method, path)
        for role in ROLES:
            cookie, csrf = sessions[role]
            async with served.client(None) as browser:
                browser.cookies.set(COOKIE, cookie)
                if method == "POST":
                    forged = await browser.request(method, url, data={"csrf": "guess"})
                    assert forged.status_code == 403, (method, path, role)
                form = {"csrf": csrf} if method == "POST" else None
                answer = await browser.request(method, url, data=form)
                allowed = ROLES.index(role) >= ROLES.index(needed)
                assert (answer.status_code != 403) == allowed, (method, path, role, answer.text)
                assert answer.status_code < 500, (method, path, role, answer.status_code)
