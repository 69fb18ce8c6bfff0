"""Channels in the store, read: stage pointers, manifests, deployments, flips, push tokens.

The writes are ops in ``store/channel_ops.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select, text

from lockgate.core.statuses import OPEN_DEPLOYMENTS, TERMINAL_RUN_STATUSES
from lockgate.errors import ChannelNotFound
from lockgate.records import (
    ChannelRecord,
    DeploymentRecord,
    FlipRecord,
    ManifestRecord,
    StageRecord,
)
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import Store
from lockgate.store.channel_admin import SetPushToken
from lockgate.store.reads import MAX_PAGE

_OPEN = tuple(s.value for s in OPEN_DEPLOYMENTS)
_TERMINAL = tuple(sorted(st.value for st in TERMINAL_RUN_STATUSES))


_STAGE_MANIFEST = text(
    """SELECT st.version, m.hash, m.body FROM channel_stages st
       LEFT JOIN channel_manifests m ON m.channel = st.channel AND m.version = st.version
       WHERE st.channel = :channel AND st.stage = :stage"""
)


class ChannelStore:
    """Reads of channels (writes are the ops above, applied by the caller)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def channel(self, name: str) -> ChannelRecord:
        """A channel's row; :class:`ChannelNotFound` if none."""
        row = self._store.read(
            lambda c: c.execute(select(s.channels).where(s.channels.c.name == name)).first()
        )
        if row is None:
            raise ChannelNotFound(f"no channel {name!r}")
        return ChannelRecord(**row._mapping)

    def all(self) -> list[ChannelRecord]:
        """Every channel any server or worker registered, by name."""
        rows = self._store.read(
            lambda c: c.execute(select(s.channels).order_by(s.channels.c.name)).all()
        )
        return [ChannelRecord(**row._mapping) for row in rows]

    def stage_manifest(self, channel: str, stage: str) -> tuple[int, str, str] | None:
        """``(version, hash, body)`` a stage serves, in one indexed read; ``None`` before its
        first flip. :class:`ChannelNotFound` for an unknown channel or stage."""
        row = self._store.read(
            lambda c: c.execute(_STAGE_MANIFEST, {"channel": channel, "stage": stage}).first()
        )
        if row is None:
            raise ChannelNotFound(f"channel {channel!r} has no stage {stage!r}")
        if row.version is None:
            return None
        return int(row.version), str(row.hash), str(row.body)

    async def stage_manifest_async(self, channel: str, stage: str) -> tuple[int, str, str] | None:
        """:meth:`stage_manifest`, without blocking the event loop (the hot public read)."""
        row = await self._store.fetch_one_async(
            _STAGE_MANIFEST.text, {"channel": channel, "stage": stage}
        )
        if row is None:
            raise ChannelNotFound(f"channel {channel!r} has no stage {stage!r}")
        version, digest, body = row
        if version is None:
            return None
        return int(version), str(digest), str(body)

    def stages(self, channel: str) -> list[StageRecord]:
        """Every stage's pointer, in stage order, in one query."""
        st, m = s.channel_stages.c, s.channel_manifests.c
        stmt = (
            select(
                st.channel,
                st.stage,
                st.position,
                st.version,
                m.hash,
                st.deployment_id,
                st.flipped_at,
                st.pinned,
            )
            .select_from(
                s.channel_stages.outerjoin(
                    s.channel_manifests, and_(m.channel == st.channel, m.version == st.version)
                )
            )
            .where(st.channel == channel)
            .order_by(st.position)
        )
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [StageRecord(**r._mapping) for r in rows]

    def head(self, channel: str) -> ManifestRecord | None:
        """The manifest of the channel's last successful deployment."""
        found = self.channel(channel)
        if found.head_version is None:
            return None
        return self.manifest(channel, found.head_version)

    def manifest(self, channel: str, version: int) -> ManifestRecord:
        """One manifest; :class:`ChannelNotFound` if there is none."""
        m = s.channel_manifests.c
        stmt = select(s.channel_manifests).where(m.channel == channel, m.version == version)
        row = self._store.read(lambda c: c.execute(stmt).first())
        if row is None:
            raise ChannelNotFound(f"channel {channel!r} has no manifest version {version}")
        return ManifestRecord(**row._mapping)

    def history(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[ManifestRecord]:
        """Manifests newest first (``body`` left empty): the lineage through ``parent``."""
        m = s.channel_manifests.c
        stmt = (
            select(m.channel, m.version, m.parent, m.deployment_id, m.hash, m.created_at)
            .where(m.channel == channel)
            .order_by(m.version.desc())
            .limit(min(limit, MAX_PAGE))
        )
        if before is not None:
            stmt = stmt.where(m.version < before)
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [ManifestRecord(body="", **r._mapping) for r in rows]

    def deployment(self, deployment_id: str) -> DeploymentRecord:
        """One deployment with its run's status."""
        found = self.deployments(ids=[deployment_id])
        if not found:
            raise ChannelNotFound(f"no deployment {deployment_id!r}")
        return found[0]

    def deployments(
        self,
        channel: str | None = None,
        *,
        ids: Sequence[str] = (),
        before: int | None = None,
        limit: int = 50,
    ) -> list[DeploymentRecord]:
        """Deployments newest first, each with its run's status."""
        dd, r = s.channel_deployments.c, s.runs.c
        stmt = (
            select(s.channel_deployments, r.status.label("run_status"))
            .select_from(s.channel_deployments.join(s.runs, r.id == dd.run_id))
            .order_by(dd.created_at.desc(), dd.seq.desc())
            .limit(min(limit, MAX_PAGE))
        )
        if channel is not None:
            stmt = stmt.where(dd.channel == channel)
        if ids:
            stmt = stmt.where(dd.id.in_(list(ids)))
        if before is not None:
            stmt = stmt.where(dd.seq < before)
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [DeploymentRecord(**row._mapping) for row in rows]

    def pinned(self, channel: str, stage: str) -> bool:
        """Whether promotions stop before ``stage``."""
        st = s.channel_stages.c
        stmt = select(st.pinned).where(st.channel == channel, st.stage == stage)
        return bool(self._store.read(lambda c: c.execute(stmt).scalar()))

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of stage pointers, newest first."""
        f = s.channel_flips.c
        stmt = select(s.channel_flips).where(f.channel == channel)
        if stage is not None:
            stmt = stmt.where(f.stage == stage)
        stmt = stmt.order_by(f.id.desc()).limit(min(limit, MAX_PAGE))
        rows = self._store.read(lambda c: c.execute(stmt).all())
        return [FlipRecord(**row._mapping) for row in rows]

    def overview(self) -> tuple[list[tuple[str, str, int | None]], list[tuple[str, str, int]]]:
        """For /metrics: ``(channel, stage, version)`` of every stage, and ``(channel,
        state, how many)`` of the deployments."""
        st, dd = s.channel_stages.c, s.channel_deployments.c
        stages = select(st.channel, st.stage, st.version)
        states = select(dd.channel, dd.state, func.count()).group_by(dd.channel, dd.state)

        def read(c: Any) -> Any:
            return c.execute(stages).all(), c.execute(states).all()

        found, counted = self._store.read(read)
        return (
            [(str(r[0]), str(r[1]), r[2]) for r in found],
            [(str(r[0]), str(r[1]), int(r[2])) for r in counted],
        )

    def set_push_token(
        self, channel: str, tenant: str, token_hash: str | None, audit: AuditEntry | None = None
    ) -> None:
        """Store (replacing) or, for ``None``, drop the hash of a tenant's push token."""
        self._store.apply(SetPushToken(channel, tenant, token_hash, audit))

    def push_token_holder(self, token_hash: str) -> tuple[str, str] | None:
        """``(channel, tenant)`` of the push token with this hash."""
        pt = s.push_tokens.c
        stmt = select(pt.channel, pt.tenant).where(pt.hash == token_hash)
        row = self._store.read(lambda c: c.execute(stmt).first())
        return None if row is None else (str(row[0]), str(row[1]))
