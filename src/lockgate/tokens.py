"""API tokens: at least 256 random bits, shown once, stored as SHA-256, revocable; roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update

from lockgate.errors import NotFound, ParamsError, Unauthorized
from lockgate.records import TokenRecord
from lockgate.store import Store
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry

PREFIX = "lg_"
#: A refused request is audited at most this often per address, route and actor.
DENIED_EVERY = 60.0


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    viewer = "viewer"
    operator = "operator"
    approver = "approver"
    admin = "admin"

    def includes(self, other: Role) -> bool:
        """Whether this role grants ``other``."""
        order = list(Role)
        return order.index(self) >= order.index(other)

    def granted(self) -> list[str]:
        """This role and every role below it."""
        return [r.value for r in Role if self.includes(r)]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Create, check, list and revoke API tokens."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._denied: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, role: str, *, subject: str | None = None, actor: str = "local"
    ) -> tuple[TokenRecord, str]:
        """A new token named ``name`` acting for ``subject`` (default: ``name``); the
        plaintext is returned once and never stored. Tokens of one subject are one
        identity: their decisions count once."""
        problems = []
        if not name or len(name) > 200:
            problems.append("name: 1 to 200 characters")
        if subject is not None and not 0 < len(subject) <= 200:
            problems.append("subject: 1 to 200 characters")
        if role not in Role.__members__:
            problems.append(f"role: one of {', '.join(Role)}")
        if problems:
            raise ParamsError(problems)
        token_id = secrets.token_hex(6)
        plaintext = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        row: dict[str, Any] = {
            "id": token_id,
            "name": name,
            "role": role,
            "hash": _digest(plaintext),
            "subject": subject or name,
            "created_at": time.time(),
            "last_used_at": None,
            "revoked_at": None,
        }
        details = {"name": name, "role": role, "subject": row["subject"]}
        audit = AuditEntry(actor, "token.create", token_id, details)

        def insert(conn: Any) -> None:
            conn.execute(s.tokens.insert().values(row))
            audit.insert(conn, row["created_at"])

        self._store.write(insert)
        return TokenRecord(**row), plaintext

    def authenticate(self, plaintext: str | None) -> TokenRecord:
        """The live token for ``plaintext``; :class:`Unauthorized` otherwise."""
        if not plaintext or not plaintext.startswith(PREFIX):
            raise Unauthorized("a valid bearer token is required")
        digest = _digest(plaintext)
        row = self._store.read(
            lambda c: c.execute(select(s.tokens).where(s.tokens.c.hash == digest)).first()
        )
        # The lookup is by hash; compare again in constant time all the same.
        if row is None or not hmac.compare_digest(row.hash, digest) or row.revoked_at:
            raise Unauthorized("a valid bearer token is required")
        return TokenRecord(**row._mapping)

    def touch(self, token: TokenRecord, route: str) -> None:
        """Record that a token was used: ``last_used_at`` and an audit entry, at most once a
        minute per token (each costs a write); state changes are audited every time."""
        now = time.time()
        if token.last_used_at is not None and now - token.last_used_at < 60:
            return
        self._store.write(
            lambda c: c.execute(
                update(s.tokens).where(s.tokens.c.id == token.id).values(last_used_at=now)
            )
        )
        self._store.audit(token.identity, "token.use", token.id, {"route": route})

    def denied(self, actor: str, route: str, client: str | None, reason: str) -> None:
        """Record a refused request (401/403), at most once a minute per address, route
        and actor: probing is visible in the audit log without flooding it."""
        key = (client or "?", route, actor)
        now = time.monotonic()
        with self._lock:
            if now - self._denied.get(key, -DENIED_EVERY) < DENIED_EVERY:
                return
            if len(self._denied) > 10_000:
                self._denied.clear()
            self._denied[key] = now
        details = {"route": route, "client": client, "reason": reason}
        self._store.audit(actor, "auth.denied", None, details)

    def list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        stmt = select(s.tokens).order_by(s.tokens.c.created_at.desc())
        return [
            TokenRecord(**r._mapping) for r in self._store.read(lambda c: c.execute(stmt).all())
        ]

    def revoke(self, token_id: str, *, actor: str = "local") -> TokenRecord:
        """Revoke a token; it stops working at once (revoking twice changes nothing)."""

        def revoke(conn: Any) -> None:
            found = conn.execute(select(s.tokens.c.name).where(s.tokens.c.id == token_id)).first()
            if found is None:
                raise NotFound(f"no token {token_id!r}")
            conn.execute(
                update(s.tokens)
                .where(s.tokens.c.id == token_id, s.tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            AuditEntry(actor, "token.revoke", token_id, {"name": found.name}).insert(
                conn, time.time()
            )

        self._store.write(revoke)
        return next(token for token in self.list() if token.id == token_id)
