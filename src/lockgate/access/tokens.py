"""API tokens: at least 256 random bits, shown once, stored as SHA-256, revocable; roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from enum import StrEnum
from typing import Any

from lockgate.access.identity import Acting
from lockgate.errors import ParamsError, Unauthorized
from lockgate.records import TokenRecord
from lockgate.store import Store
from lockgate.store.audit import AuditEntry
from lockgate.store.tokens import TokenStore

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


#: Who token changes made by the App itself (acting as nobody) are audited as.
LOCAL = "local"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens(Acting):
    """Create, check, list and revoke API tokens."""

    def __init__(self, store: Store) -> None:
        self._rows = TokenStore(store)
        self._denied: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, role: str, *, subject: str | None = None
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
        }
        details = {"name": name, "role": role, "subject": row["subject"]}
        audit = AuditEntry(self.actor or LOCAL, "token.create", token_id, details)
        return self._rows.create(row, audit), plaintext

    def authenticate(self, plaintext: str | None) -> TokenRecord:
        """The live token for ``plaintext``; :class:`Unauthorized` otherwise."""
        if not plaintext or not plaintext.startswith(PREFIX):
            raise Unauthorized("a valid bearer token is required")
        digest = _digest(plaintext)
        token = self._rows.by_hash(digest)
        # The lookup is by hash; compare again in constant time all the same.
        if token is None or not hmac.compare_digest(token.hash, digest) or token.revoked_at:
            raise Unauthorized("a valid bearer token is required")
        return token

    def touch(self, token: TokenRecord, route: str) -> None:
        """Record that a token was used: ``last_used_at`` and an audit entry, at most once a
        minute per token (each costs a write); state changes are audited every time."""
        now = time.time()
        if token.last_used_at is not None and now - token.last_used_at < 60:
            return
        self._rows.touch(
            token.id, AuditEntry(token.identity, "token.use", token.id, {"route": route})
        )

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
        self._rows.audit(AuditEntry(actor, "auth.denied", None, details))

    def list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        return self._rows.all()

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token; it stops working at once (revoking twice changes nothing)."""
        self._rows.revoke(token_id, self.actor or LOCAL)
        return next(token for token in self.list() if token.id == token_id)
