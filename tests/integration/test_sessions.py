"""Threat: console sessions nobody can end (one-time-link sessions have no token to revoke
and lasted 12 hours). Admins list live sessions and end them from REST, the console and the
CLI; a session idle past the timeout ends by itself."""

from __future__ import annotations

import time

import pytest
from api_support import Served

from lockgate import App, Settings
from lockgate.console.core import COOKIE
from lockgate.errors import NotFound, ParamsError
from lockgate.store import schema


async def test_an_admin_ends_a_link_session_over_rest_and_the_console(served: Served) -> None:
    app = served.app
    link = app.acting("test").sessions.make_link("operator", "mallory")
    cookie, session = app.sessions.redeem(link)
    other, _ = app.sessions.redeem(app.acting("test").sessions.make_link("viewer", "vic"))
    admin_cookie, admin = app.sessions.sign_in(served.tokens["admin"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        assert (await browser.get("/runs")).status_code == 200
    async with served.client("admin") as api:
        listed = (await api.get("/api/v1/sessions")).json()
        mine = next(s for s in listed if s["subject"] == "mallory")
        assert mine["ref"] == session.ref and mine["token_id"] is None
        assert all("csrf" not in s and "id" not in s for s in listed)
        assert session.id not in str(listed) and session.csrf not in str(listed)
        gone = await api.delete(f"/api/v1/sessions/{session.ref}")
        assert gone.status_code == 200 and gone.json()["ended_at"] is not None
        assert (await api.delete(f"/api/v1/sessions/{session.ref}")).status_code == 404
        assert (await api.delete("/api/v1/sessions/zz")).status_code == 422
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        after = await browser.get("/runs", follow_redirects=False)
        assert after.status_code == 303 and "/sign-in" in after.headers["location"]
    # The console's admin page lists and ends them too.
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, admin_cookie)
        page = await browser.get("/admin/sessions")
        assert page.status_code == 200 and "vic" in page.text and "mallory" not in page.text
        vic = next(s for s in app.sessions.list() if s.subject == "vic")
        ended = await browser.post(
            f"/admin/sessions/{vic.ref}/revoke", data={"csrf": admin.csrf}, follow_redirects=False
        )
        assert ended.status_code == 303
    assert app.sessions.find(other) is None
    actions = [a.action for a in app.audit_log(0, 1000)]
    assert actions.count("console.session_revoke") == 2
    with pytest.raises(NotFound):
        app.acting("t").sessions.revoke("0" * 16)
    with pytest.raises(ParamsError):
        app.acting("t").sessions.revoke("abc")


def test_an_idle_session_ends(settings: Settings) -> None:
    app = App(settings.with_(console_idle_seconds=120))
    app.migrate()
    try:
        cookie, session = app.sessions.redeem(app.acting("t").sessions.make_link("viewer", "ida"))
        assert app.sessions.find(cookie) is not None
        # Used a little while ago: still live, and the use is noted (at most once a minute).
        _backdate(app, session.id, 100)
        assert app.sessions.find(cookie) is not None
        assert _last_seen(app, session.id) > time.time() - 5
        # Unused for longer than the idle timeout: ended, though not expired.
        _backdate(app, session.id, 130)
        assert app.sessions.find(cookie) is None
        assert [s.subject for s in app.sessions.list()] == []
    finally:
        app.close()


def _backdate(app: App, session_id: str, seconds: float) -> None:
    c = schema.console_sessions.c

    class Backdate:
        def apply(self, tx: object) -> None:
            tx.conn.execute(  # type: ignore[attr-defined]
                schema.console_sessions.update()
                .where(c.id == session_id)
                .values(last_seen_at=time.time() - seconds)
            )

    app.store.apply(Backdate())


def _last_seen(app: App, session_id: str) -> float:
    c = schema.console_sessions.c
    stmt = schema.console_sessions.select().where(c.id == session_id)
    return float(app.store.read(lambda conn: conn.execute(stmt).one()).last_seen_at)
