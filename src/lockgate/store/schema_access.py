"""Who may act, and what they did: tokens, console sessions and links, the audit log."""

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    String,
    Table,
)

from lockgate.store.columns import Id, metadata

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    #: SHA-256 (hex) of the whole token; the token itself is shown once and never stored.
    Column("hash", String(64), nullable=False, unique=True),
    #: The person or machine the token acts for; two tokens of one subject are one identity.
    Column("subject", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

#: Signed-in web console sessions. Only the hash of the cookie is kept; a session made with
#: an API token ends when that token is revoked.
console_sessions = Table(
    "console_sessions",
    metadata,
    #: SHA-256 (hex) of the cookie's value.
    Column("id", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    #: The API token it was made with (``None``: a one-time link).
    Column("token_id", String(32), nullable=True, index=True),
    #: The secret every form of the session carries (CSRF).
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    #: When it was last used (to the minute): idle past the timeout, it ends.
    Column("last_seen_at", Float, nullable=True),
    #: A note for the next page this session sees (what an action did), shown once.
    Column("flash", String(500), nullable=True),
)

#: One-time sign-in links (``lockgate console-link``): used once, before they expire.
console_links = Table(
    "console_links",
    metadata,
    #: SHA-256 (hex) of the link's secret.
    Column("id", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    #: Who: a token's name, or the OS user of an in-process command.
    Column("actor", String(200), nullable=False),
    #: What, as ``noun.verb``: ``run.start``, ``run.cancel``, ``decision.approve``, ...
    Column("action", String(50), nullable=False),
    Column("target", String(200), nullable=True),
    Column("details", JSON, nullable=True),
    Index("ix_audit_at", "at"),
)
