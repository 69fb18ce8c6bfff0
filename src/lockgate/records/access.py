"""Who may act: API tokens, console sessions, and the audit log of what they did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockgate.records.base import Record


@dataclass(frozen=True)
class TokenRecord(Record):
    """An API token (never its secret)."""

    id: str
    name: str
    role: str
    hash: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    #: The person or machine the token acts for (its name when not set).
    subject: str | None = None

    @property
    def identity(self) -> str:
        """Who acts with this token: decisions and audit entries are recorded under it."""
        return self.subject or self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, without the hash."""
        data = super().to_dict()
        data.pop("hash")
        return data


@dataclass(frozen=True)
class AuditRecord(Record):
    """One audited action."""

    id: int
    at: float
    actor: str
    action: str
    target: str | None
    details: Any


@dataclass(frozen=True)
class SessionRecord(Record):
    """A signed-in web console session (the cookie itself is never stored)."""

    id: str
    subject: str
    role: str
    token_id: str | None
    csrf: str
    created_at: float
    expires_at: float
    ended_at: float | None
    last_seen_at: float | None = None
    #: A note for the next page (what an action did), shown once.
    flash: str | None = None

    @property
    def ref(self) -> str:
        """How people name the session (a prefix of its id, itself a hash of the cookie)."""
        return self.id[:16]

    def public(self) -> dict[str, object]:
        """What an admin sees of it: never the cookie's hash or the CSRF secret."""
        return {
            "ref": self.ref,
            "subject": self.subject,
            "role": self.role,
            "token_id": self.token_id,
            "created_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "expires_at": self.expires_at,
            "ended_at": self.ended_at,
        }
