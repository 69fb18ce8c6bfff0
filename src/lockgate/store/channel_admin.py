"""Writes of a channel's settings: tenants' push tokens, and pinned stages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from lockgate.errors import ChannelNotFound
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.ops import WriteTx


@dataclass(frozen=True)
class SetPushToken:
    """Replace (or, with ``None``, drop) the hash of a tenant's push token on a channel;
    :class:`ChannelNotFound` for an unknown channel."""

    channel: str
    tenant: str
    token_hash: str | None
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> None:
        pt, conn = s.push_tokens.c, tx.conn
        if not conn.execute(
            select(s.channels.c.name).where(s.channels.c.name == self.channel)
        ).first():
            raise ChannelNotFound(f"no channel {self.channel!r}")
        conn.execute(
            delete(s.push_tokens).where(pt.channel == self.channel, pt.tenant == self.tenant)
        )
        if self.token_hash is not None:
            conn.execute(
                s.push_tokens.insert().values(
                    channel=self.channel,
                    tenant=self.tenant,
                    hash=self.token_hash,
                    created_at=tx.now,
                )
            )
        if self.audit is not None:
            self.audit.insert(conn, tx.now)


@dataclass(frozen=True)
class SetPin:
    """Pin (or unpin) a channel's stage, audited; the stage as it is now."""

    channel: str
    stage: str
    pinned: bool
    audit: AuditEntry | None = None

    def apply(self, tx: WriteTx) -> None:
        st = s.channel_stages.c
        changed = tx.conn.execute(
            update(s.channel_stages)
            .where(st.channel == self.channel, st.stage == self.stage)
            .values(pinned=self.pinned)
        ).rowcount
        if not changed:
            raise ChannelNotFound(f"channel {self.channel!r} has no stage {self.stage!r}")
        if self.audit is not None:
            self.audit.insert(tx.conn, tx.now)
