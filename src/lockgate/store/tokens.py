"""API tokens in the store: only their hashes, with who they act for and when they were used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from lockgate.errors import NotFound
from lockgate.records import TokenRecord
from lockgate.store import schema as s
from lockgate.store.audit import AppendAudit, AuditEntry
from lockgate.store.base import Store
from lockgate.store.ops import WriteTx


@dataclass(frozen=True)
class InsertToken:
    """Store a new token's row (its hash, never the token) with its audit entry."""

    row: dict[str, Any]
    audit: AuditEntry

    def apply(self, tx: WriteTx) -> TokenRecord:
        row = {**self.row, "created_at": tx.now, "last_used_at": None, "revoked_at": None}
        tx.conn.execute(s.tokens.insert().values(row))
        self.audit.insert(tx.conn, tx.now)
        return TokenRecord(**row)


@dataclass(frozen=True)
class TouchToken:
    """Record a token's use: ``last_used_at``, and the audit entry of its use."""

    token_id: str
    audit: AuditEntry

    def apply(self, tx: WriteTx) -> None:
        t = s.tokens.c
        tx.conn.execute(update(s.tokens).where(t.id == self.token_id).values(last_used_at=tx.now))
        self.audit.insert(tx.conn, tx.now)


@dataclass(frozen=True)
class RevokeToken:
    """Revoke a token (revoking twice changes nothing but the audit); :class:`NotFound`
    for an unknown id."""

    token_id: str
    actor: str

    def apply(self, tx: WriteTx) -> None:
        t = s.tokens.c
        found = tx.conn.execute(select(t.name).where(t.id == self.token_id)).first()
        if found is None:
            raise NotFound(f"no token {self.token_id!r}")
        tx.conn.execute(
            update(s.tokens)
            .where(t.id == self.token_id, t.revoked_at.is_(None))
            .values(revoked_at=tx.now)
        )
        entry = AuditEntry(self.actor, "token.revoke", self.token_id, {"name": found.name})
        entry.insert(tx.conn, tx.now)


class TokenStore:
    """Reads and writes of the ``tokens`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, row: dict[str, Any], audit: AuditEntry) -> TokenRecord:
        """Insert a token's row (``created_at`` is set here)."""
        return self._store.apply(InsertToken(row, audit))

    def by_hash(self, digest: str) -> TokenRecord | None:
        """The token whose hash is ``digest`` (revoked or not)."""
        stmt = select(s.tokens).where(s.tokens.c.hash == digest)
        row = self._store.read(lambda c: c.execute(stmt).first())
        return None if row is None else TokenRecord(**row._mapping)

    def touch(self, token_id: str, audit: AuditEntry) -> None:
        """Record a use of the token."""
        self._store.apply(TouchToken(token_id, audit))

    def revoke(self, token_id: str, actor: str) -> None:
        """Revoke a token, audited as ``actor``."""
        self._store.apply(RevokeToken(token_id, actor))

    def all(self) -> list[TokenRecord]:
        """Every token, newest first."""
        stmt = select(s.tokens).order_by(s.tokens.c.created_at.desc())
        return [
            TokenRecord(**r._mapping) for r in self._store.read(lambda c: c.execute(stmt).all())
        ]

    def audit(self, entry: AuditEntry) -> None:
        """Append an audit entry that goes with no other write."""
        self._store.apply(AppendAudit(entry))
