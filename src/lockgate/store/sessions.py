"""Web console sessions and one-time sign-in links in the store (hashes only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update

from lockgate.errors import Unauthorized
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
        row = {**self.row, "created_at": tx.now, "ended_at": None}
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

    def live(self, session_id: str, now: float) -> SessionRecord | None:
        """The session, if it has not ended or expired and its token (if any) is not revoked."""
        c, t = s.console_sessions.c, s.tokens.c
        stmt = (
            select(s.console_sessions)
            .outerjoin(s.tokens, t.id == c.token_id)
            .where(
                c.id == session_id,
                c.ended_at.is_(None),
                c.expires_at > now,
                or_(c.token_id.is_(None), and_(t.id.is_not(None), t.revoked_at.is_(None))),
            )
        )
        row = self._store.read(lambda conn: conn.execute(stmt).first())
        return None if row is None else SessionRecord(**row._mapping)
