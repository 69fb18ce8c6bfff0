"""Web console sessions and one-time sign-in links in the store (hashes only)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update

from lockgate.errors import NotFound, ParamsError, Unauthorized
from lockgate.records import SessionRecord
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import Store
from lockgate.store.ops import WriteTx


@dataclass(frozen=True)
class OpenSession:
    """Store a new session (``created_at`` is the transaction's time), audited."""

    row: dict[str, Any]
    audit: AuditEntry

    def apply(self, tx: WriteTx) -> SessionRecord:
        row = {**self.row, "created_at": tx.now, "ended_at": None, "last_seen_at": tx.now}
        tx.conn.execute(s.console_sessions.insert().values(row))
        self.audit.insert(tx.conn, tx.now)
        return SessionRecord(**row)


@dataclass(frozen=True)
class EndSession:
    """End a session now (signing out twice changes nothing), audited the first time."""

    session_id: str
    audit: AuditEntry

    def apply(self, tx: WriteTx) -> None:
        c = s.console_sessions.c
        ended = tx.conn.execute(
            update(s.console_sessions)
            .where(c.id == self.session_id, c.ended_at.is_(None))
            .values(ended_at=tx.now)
        ).rowcount
        if ended:
            self.audit.insert(tx.conn, tx.now)


@dataclass(frozen=True)
class RevokeSession:
    """End the live session named by ``ref`` (a prefix of its id, at least 8 characters),
    audited; :class:`NotFound` if none is, :class:`ParamsError` if several are."""

    ref: str
    actor: str

    def apply(self, tx: WriteTx) -> SessionRecord:
        c = s.console_sessions.c
        if len(self.ref) < 8 or not all(ch in "0123456789abcdef" for ch in self.ref):
            raise ParamsError(["ref: at least 8 of the session's hex characters"])
        rows = tx.conn.execute(
            select(s.console_sessions).where(
                c.id.like(f"{self.ref}%"), c.ended_at.is_(None), c.expires_at > tx.now
            )
        ).all()
        if not rows:
            raise NotFound(f"no live session {self.ref!r}")
        if len(rows) > 1:
            raise ParamsError([f"ref: {self.ref!r} names {len(rows)} sessions; give more of it"])
        found = SessionRecord(**rows[0]._mapping)
        tx.conn.execute(update(s.console_sessions).where(c.id == found.id).values(ended_at=tx.now))
        details = {"ref": found.ref, "subject": found.subject}
        AuditEntry(self.actor, "console.session_revoke", None, details).insert(tx.conn, tx.now)
        return replace(found, ended_at=tx.now)


@dataclass(frozen=True)
class TouchSession:
    """Note that a session was used now (at most once a minute: a page view is a read)."""

    session_id: str

    def apply(self, tx: WriteTx) -> None:
        c = s.console_sessions.c
        tx.conn.execute(
            update(s.console_sessions)
            .where(
                c.id == self.session_id,
                func.coalesce(c.last_seen_at, c.created_at) < tx.now - TOUCH_EVERY,
            )
            .values(last_seen_at=tx.now)
        )


@dataclass(frozen=True)
class Flash:
    """Keep a note for the session's next page (``None``: it was shown; cleared only if
    it is still ``shown``, so a newer note is not lost)."""

    session_id: str
    note: str | None
    shown: str | None = None

    def apply(self, tx: WriteTx) -> None:
        c = s.console_sessions.c
        where = [c.id == self.session_id]
        if self.note is None:
            where.append(c.flash == self.shown)
        note = None if self.note is None else self.note[:500]
        tx.conn.execute(update(s.console_sessions).where(*where).values(flash=note))


#: A session's use is recorded at most this often (seconds).
TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class CreateLink:
    """Store a one-time sign-in link (its hash), audited."""

    row: dict[str, Any]
    audit: AuditEntry

    def apply(self, tx: WriteTx) -> None:
        tx.conn.execute(s.console_links.insert().values({**self.row, "created_at": tx.now}))
        self.audit.insert(tx.conn, tx.now)


@dataclass(frozen=True)
class RedeemLink:
    """Use a sign-in link once and open its session in the same transaction; a link used
    before, expired or unknown is :class:`Unauthorized` (the same answer for all three)."""

    link_id: str
    session: dict[str, Any]

    def apply(self, tx: WriteTx) -> SessionRecord:
        c = s.console_links.c
        found = tx.conn.execute(
            select(c.subject, c.role).where(
                c.id == self.link_id, c.used_at.is_(None), c.expires_at > tx.now
            )
        ).first()
        won = (
            found is not None
            and tx.conn.execute(
                update(s.console_links)
                .where(c.id == self.link_id, c.used_at.is_(None))
                .values(used_at=tx.now)
            ).rowcount
        )
        if not won or found is None:
            raise Unauthorized("this sign-in link was used, has expired, or does not exist")
        row = {**self.session, "subject": found.subject, "role": found.role, "token_id": None}
        entry = AuditEntry(found.subject, "console.sign_in", None, {"with": "link"})
        return OpenSession(row, entry).apply(tx)


class SessionStore:
    """Reads and writes of console sessions and links."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def open(self, row: dict[str, Any], audit: AuditEntry) -> SessionRecord:
        """Store a new session."""
        return self._store.apply(OpenSession(row, audit))

    def end(self, session_id: str, audit: AuditEntry) -> None:
        """End a session."""
        self._store.apply(EndSession(session_id, audit))

    def create_link(self, row: dict[str, Any], audit: AuditEntry) -> None:
        """Store a one-time sign-in link."""
        self._store.apply(CreateLink(row, audit))

    def redeem(self, link_id: str, session: dict[str, Any]) -> SessionRecord:
        """Use a link and open its session."""
        return self._store.apply(RedeemLink(link_id, session))

    def live(self, session_id: str, now: float, idle: float) -> SessionRecord | None:
        """The session, if it has not ended, expired or been idle for ``idle`` seconds, and
        its token (if any) is not revoked; its use is noted."""
        stmt = self._live(now, idle).where(s.console_sessions.c.id == session_id)
        row = self._store.read(lambda conn: conn.execute(stmt).first())
        if row is None:
            return None
        found = SessionRecord(**row._mapping)
        if found.last_seen_at is None or found.last_seen_at < now - TOUCH_EVERY:
            self._store.apply(TouchSession(found.id))
        return found

    def list_live(self, now: float, idle: float) -> list[SessionRecord]:
        """Every live session, newest first."""
        stmt = self._live(now, idle).order_by(s.console_sessions.c.created_at.desc())
        rows = self._store.read(lambda conn: conn.execute(stmt).all())
        return [SessionRecord(**row._mapping) for row in rows]

    def revoke(self, ref: str, actor: str) -> SessionRecord:
        """End a live session by its ref, audited."""
        return self._store.apply(RevokeSession(ref, actor))

    def flash(self, session_id: str, note: str | None, shown: str | None = None) -> None:
        """Keep (or, with ``None``, clear) the note for a session's next page."""
        self._store.apply(Flash(session_id, note, shown))

    @staticmethod
    def _live(now: float, idle: float) -> Select[Any]:
        c, t = s.console_sessions.c, s.tokens.c
        return (
            select(s.console_sessions)
            .outerjoin(s.tokens, t.id == c.token_id)
            .where(
                c.ended_at.is_(None),
                c.expires_at > now,
                func.coalesce(c.last_seen_at, c.created_at) > now - idle,
                or_(c.token_id.is_(None), and_(t.id.is_not(None), t.revoked_at.is_(None))),
            )
        )
