"""Web console sign-in: sessions made from an API token or a one-time link.

The browser holds a random cookie; the store keeps only its hash, with the session's subject,
role, expiry and CSRF secret. Signing out ends the session in the store, and a session made
with a token ends when that token is revoked (checked on every request).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time

from lockgate.access.identity import Acting
from lockgate.access.tokens import LOCAL, Role, Tokens
from lockgate.core.buckets import Buckets
from lockgate.errors import ParamsError, RateLimited, Unauthorized
from lockgate.records import SessionRecord
from lockgate.settings import Settings
from lockgate.store import Store
from lockgate.store.audit import AuditEntry
from lockgate.store.sessions import SessionStore

#: How long a note stays on the page an action sent the person to.
FLASH_SECONDS = 60.0
#: One-time link secrets start with this, so a pasted token is told apart.
LINK_PREFIX = "lgl_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions(Acting):
    """Signs people in and out of the web console."""

    def __init__(self, store: Store, tokens: Tokens, settings: Settings) -> None:
        self._rows = SessionStore(store)
        self._tokens = tokens
        self._settings = settings
        per_minute = settings.console_signin_per_minute
        self._attempts = Buckets(per_minute / 60.0, max(1, int(per_minute)))

    def attempt(self, address: str | None) -> None:
        """Spend one of ``address``'s sign-in attempts (each is a write: a token check or a
        link redeemed); :class:`RateLimited` when it has none left."""
        wait = self._attempts.take(address or "unknown")
        if wait:
            raise RateLimited(
                "too many sign-in attempts from this address; try again later",
                details={"retry_after": max(1, math.ceil(wait))},
            )

    def _new(self) -> tuple[str, dict[str, object]]:
        cookie = secrets.token_urlsafe(32)
        row: dict[str, object] = {
            "id": _digest(cookie),
            "csrf": secrets.token_urlsafe(32),
            "expires_at": time.time() + self._settings.console_session_seconds,
        }
        return cookie, row

    def sign_in(self, token: str) -> tuple[str, SessionRecord]:
        """A session for the holder of API token ``token``: the cookie to set, and the
        session. :class:`Unauthorized` for a token that does not authenticate."""
        record = self._tokens.authenticate(token.strip())
        cookie, row = self._new()
        row.update(subject=record.identity, role=record.role, token_id=record.id)
        entry = AuditEntry(record.identity, "console.sign_in", None, {"with": "token"})
        return cookie, self._rows.open(row, entry)

    def make_link(self, role: str, subject: str) -> str:
        """A one-time sign-in link's secret for ``subject`` with ``role`` (shown once, kept
        hashed; it works once, for ``console_link_seconds``)."""
        problems = []
        if role not in Role.__members__:
            problems.append(f"role: one of {', '.join(Role)}")
        if not 0 < len(subject) <= 200:
            problems.append("subject: 1 to 200 characters")
        if problems:
            raise ParamsError(problems)
        secret = LINK_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": _digest(secret),
            "subject": subject,
            "role": role,
            "created_by": self.actor or LOCAL,
            "expires_at": time.time() + self._settings.console_link_seconds,
        }
        details = {"subject": subject, "role": role}
        self._rows.create_link(row, AuditEntry(self.actor or LOCAL, "console.link", None, details))
        return secret

    def redeem(self, secret: str) -> tuple[str, SessionRecord]:
        """Use a one-time link: the cookie to set, and the session it opens."""
        if not secret.startswith(LINK_PREFIX):
            raise Unauthorized("this sign-in link was used, has expired, or does not exist")
        cookie, row = self._new()
        return cookie, self._rows.redeem(_digest(secret), row)

    def find(self, cookie: str | None) -> SessionRecord | None:
        """The live session of a cookie (not ended, expired or idle, its token not
        revoked)."""
        if not cookie:
            return None
        return self._rows.live(_digest(cookie), time.time(), self._settings.console_idle_seconds)

    def flash(self, session: SessionRecord, note: str, path: str) -> None:
        """Show ``note`` on the page at ``path`` that an action sends the person to (what
        the action did): kept with the session, never in a URL that reflects it."""
        kept = {"path": path[:200], "note": note[:250], "at": time.time()}
        self._rows.flash(session.id, json.dumps(kept, ensure_ascii=False))

    def take_flash(self, session: SessionRecord, path: str) -> str | None:
        """The note for the page at ``path``: shown there for a little while (a page that
        reloads itself, as a run's does when it ends, shows it again), forgotten once the
        person goes to another page."""
        if session.flash is None:
            return None
        try:
            kept = json.loads(session.flash)
            note, there, at = str(kept["note"]), str(kept["path"]), float(kept["at"])
        except (ValueError, KeyError, TypeError):
            note, there, at = "", "", 0.0
        if there == path and time.time() - at < FLASH_SECONDS:
            return note
        self._rows.flash(session.id, None, session.flash)
        return None

    def list(self) -> list[SessionRecord]:
        """Live console sessions, newest first (an admin's view)."""
        return self._rows.list_live(time.time(), self._settings.console_idle_seconds)

    def revoke(self, ref: str) -> SessionRecord:
        """End a live session named by its ref now: its cookie stops working at once,
        everywhere."""
        return self._rows.revoke(ref.strip().lower(), self.actor or LOCAL)

    def sign_out(self, session: SessionRecord) -> None:
        """End the session now, in the store: the cookie stops working everywhere."""
        self._rows.end(session.id, AuditEntry(session.subject, "console.sign_out"))
