"""Channels in the store: stage pointers, immutable manifests, deployments and flips.

Every change of a channel is an op (one transaction, guarded): a push takes the next
sequence number under the channel row's write lock and creates its run in the same
transaction; a deployment takes the channel's turn by compare-and-set; a flip moves one
stage pointer by compare-and-set and records the flip in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select, text, update

from lockgate.core.statuses import TERMINAL_RUN_STATUSES
from lockgate.errors import ChannelNotFound, Conflict, InvalidState
from lockgate.store import schema as s
from lockgate.store.audit import AuditEntry
from lockgate.store.base import MAX_PAGE, Store
from lockgate.store.ops import WriteTx
from lockgate.store.records import Record, RunRecord
from lockgate.store.runs import CreateRun

#: Deployment states; a deployment's run carries the detail (steps, events, logs).
QUEUED, ACTIVE, SUCCEEDED, FAILED = "QUEUED", "ACTIVE", "SUCCEEDED", "FAILED"
_OPEN = (QUEUED, ACTIVE)
_TERMINAL = tuple(sorted(st.value for st in TERMINAL_RUN_STATUSES))


@dataclass(frozen=True)
class ChannelRecord(Record):
    """A channel's stored state."""

    name: str
    definition: Any
    head_version: int | None
    last_seq: int
    last_version: int
    active_deployment: str | None
    public_read: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StageRecord(Record):
    """Where one stage points."""

    channel: str
    stage: str
    position: int
    version: int | None
    hash: str | None
    deployment_id: str | None
    flipped_at: float | None


@dataclass(frozen=True)
class ManifestRecord(Record):
    """One immutable manifest; ``body`` is its canonical JSON text."""

    channel: str
    version: int
    parent: int | None
    deployment_id: str
    hash: str
    body: str
    created_at: float


@dataclass(frozen=True)
class DeploymentRecord(Record):
    """One push and how its deployment went (``run_status`` is its run's)."""

    id: str
    channel: str
    seq: int
    tenant: str
    command: str
    run_id: str
    state: str
    manifest_version: int | None
    error: str | None
    requested_by: str | None
    created_at: float
    finished_at: float | None
    run_status: str | None = None


@dataclass(frozen=True)
class FlipRecord(Record):
    """One move of a stage pointer."""

    id: int
    channel: str
    stage: str
    deployment_id: str
    kind: str
    from_version: int | None
    to_version: int | None
    at: float


# -- writes --------------------------------------------------------------------------------


@dataclass
class RegisterChannel:
    """Create or update a channel's row and its stages (in order)."""

    name: str
    definition: Any
    stages: Sequence[str]
    public_read: bool

    def apply(self, tx: WriteTx) -> None:
        """Insert what is missing; stages no longer defined are dropped."""
        c = s.channels.c
        tx.conn.execute(
            tx.insert(s.channels)
            .values(
                name=self.name,
                definition=self.definition,
                head_version=None,
                last_seq=0,
                last_version=0,
                active_deployment=None,
                public_read=self.public_read,
                created_at=tx.now,
                updated_at=tx.now,
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        tx.conn.execute(
            update(s.channels)
            .where(c.name == self.name)
            .values(definition=self.definition, public_read=self.public_read)
        )
        st = s.channel_stages.c
        tx.conn.execute(
            delete(s.channel_stages).where(
                st.channel == self.name, st.stage.not_in(list(self.stages))
            )
        )
        for position, stage in enumerate(self.stages):
            tx.conn.execute(
                tx.insert(s.channel_stages)
                .values(channel=self.name, stage=stage, position=position, version=None)
                .on_conflict_do_nothing(index_elements=["channel", "stage"])
            )
            tx.conn.execute(
                update(s.channel_stages)
                .where(st.channel == self.name, st.stage == stage)
                .values(position=position)
            )


@dataclass
class Push:
    """A push: the channel's next sequence number, a QUEUED deployment and its run."""

    deployment_id: str
    channel: str
    tenant: str
    command: str
    requested_by: str | None
    create: CreateRun

    def apply(self, tx: WriteTx) -> tuple[DeploymentRecord, RunRecord, bool]:
        """``(deployment, its run, created)``; a reused idempotency key returns the first
        push."""
        run, created = self.create.apply(tx)
        if not created:
            found = _deployment_by_run(tx.conn, run.id)
            if found is None:
                key = self.create.idempotency_key
                raise Conflict(f"idempotency key {key!r} is used by run {run.id}, not a push")
            return found, run, False
        c = s.channels.c
        seq = tx.conn.execute(
            update(s.channels)
            .where(c.name == self.channel)
            .values(last_seq=c.last_seq + 1, updated_at=tx.now)
            .returning(c.last_seq)
        ).scalar()
        if seq is None:
            raise ChannelNotFound(f"no channel {self.channel!r} in the database")
        row: dict[str, Any] = {
            "id": self.deployment_id,
            "channel": self.channel,
            "seq": int(seq),
            "tenant": self.tenant,
            "command": self.command,
            "run_id": run.id,
            "state": QUEUED,
            "manifest_version": None,
            "error": None,
            "requested_by": self.requested_by,
            "created_at": tx.now,
            "finished_at": None,
        }
        tx.conn.execute(s.channel_deployments.insert().values(row))
        return DeploymentRecord(**row, run_status=run.status), run, True


_EARLIER_OPEN = text(
    f"""SELECT d.id FROM channel_deployments d JOIN runs r ON r.id = d.run_id
        WHERE d.channel = :channel AND d.seq < :seq AND d.state IN ('QUEUED', 'ACTIVE')
          AND r.status NOT IN ({", ".join(f"'{t}'" for t in _TERMINAL)})
        ORDER BY d.seq LIMIT 1"""  # noqa: S608 - constants
)
_HOLDER_OPEN = text(
    f"""SELECT d.id FROM channel_deployments d JOIN runs r ON r.id = d.run_id
        WHERE d.id = :id AND d.state IN ('QUEUED', 'ACTIVE')
          AND r.status NOT IN ({", ".join(f"'{t}'" for t in _TERMINAL)})"""  # noqa: S608
)


@dataclass
class TakeTurn:
    """Make this deployment the channel's one active deployment, if its turn has come.

    Its turn has come when no earlier push of the channel is still open and no other
    deployment holds the channel (a holder whose run ended without letting go is skipped).
    """

    deployment_id: str

    def apply(self, tx: WriteTx) -> str | None:
        """``None`` once the turn is taken (or was already); else the id waited for."""
        d = _deployment(tx.conn, self.deployment_id)
        if d.state not in _OPEN:
            raise InvalidState(f"deployment {d.id} is {d.state}")
        c = s.channels.c
        holder = _holder(tx.conn, d.channel)
        if holder == d.id:
            return None
        earlier = tx.conn.execute(_EARLIER_OPEN, {"channel": d.channel, "seq": d.seq}).scalar()
        if earlier is not None:
            return str(earlier)
        if holder is not None and tx.conn.execute(_HOLDER_OPEN, {"id": holder}).first():
            return str(holder)
        taken = tx.conn.execute(
            update(s.channels)
            .where(c.name == d.channel, c.active_deployment.is_not_distinct_from(holder))
            .values(active_deployment=d.id, updated_at=tx.now)
        ).rowcount
        if not taken:
            return holder or "another deployment"
        tx.conn.execute(
            update(s.channel_deployments)
            .where(s.channel_deployments.c.id == d.id)
            .values(state=ACTIVE)
        )
        return None


@dataclass
class WriteManifest:
    """Store the merged manifest of the active deployment (once: a re-run gets the first)."""

    deployment_id: str
    parent: int | None
    hash: str
    body: str

    def apply(self, tx: WriteTx) -> ManifestRecord:
        """The manifest, with the channel's next version number."""
        d = _deployment(tx.conn, self.deployment_id)
        m = s.channel_manifests.c
        if d.manifest_version is not None:
            found = tx.conn.execute(
                select(s.channel_manifests).where(
                    m.channel == d.channel, m.version == d.manifest_version
                )
            ).one()
            return ManifestRecord(**found._mapping)
        c = s.channels.c
        channel = tx.conn.execute(
            select(c.head_version, c.active_deployment).where(c.name == d.channel)
        ).one()
        if channel.active_deployment != d.id:
            raise Conflict(f"deployment {d.id} does not hold channel {d.channel!r}")
        if channel.head_version != self.parent:
            raise Conflict(
                f"channel {d.channel!r} moved to version {channel.head_version} "
                f"while deployment {d.id} merged onto {self.parent}"
            )
        version = tx.conn.execute(
            update(s.channels)
            .where(c.name == d.channel)
            .values(last_version=c.last_version + 1, updated_at=tx.now)
            .returning(c.last_version)
        ).scalar_one()
        row: dict[str, Any] = {
            "channel": d.channel,
            "version": int(version),
            "parent": self.parent,
            "deployment_id": d.id,
            "hash": self.hash,
            "body": self.body,
            "created_at": tx.now,
        }
        tx.conn.execute(s.channel_manifests.insert().values(row))
        tx.conn.execute(
            update(s.channel_deployments)
            .where(s.channel_deployments.c.id == d.id)
            .values(manifest_version=version)
        )
        return ManifestRecord(**row)


@dataclass
class Flip:
    """Point a stage at the deployment's manifest: compare-and-set, recorded as a flip."""

    deployment_id: str
    stage: str

    def apply(self, tx: WriteTx) -> FlipRecord | None:
        """The flip recorded; ``None`` when this deployment had already flipped the stage."""
        d = _deployment(tx.conn, self.deployment_id)
        if d.manifest_version is None:
            raise InvalidState(f"deployment {d.id} has no manifest to flip to")
        if _holder(tx.conn, d.channel) != d.id:
            raise Conflict(f"deployment {d.id} does not hold channel {d.channel!r}")
        st = s.channel_stages.c
        current = tx.conn.execute(
            select(st.version, st.deployment_id).where(
                st.channel == d.channel, st.stage == self.stage
            )
        ).first()
        if current is None:
            raise ChannelNotFound(f"channel {d.channel!r} has no stage {self.stage!r}")
        if current.version == d.manifest_version and current.deployment_id == d.id:
            return None  # a re-run after a crash: the flip is in
        moved = tx.conn.execute(
            update(s.channel_stages)
            .where(
                st.channel == d.channel,
                st.stage == self.stage,
                st.version.is_not_distinct_from(current.version),
            )
            .values(version=d.manifest_version, deployment_id=d.id, flipped_at=tx.now)
        ).rowcount
        if not moved:
            raise Conflict(f"stage {self.stage!r} of {d.channel!r} moved during the flip")
        return _record_flip(tx, d, self.stage, "flip", current.version, d.manifest_version)


@dataclass
class Revert:
    """Put a stage back where it was before this deployment flipped it (idempotent)."""

    deployment_id: str
    stage: str

    def apply(self, tx: WriteTx) -> FlipRecord | None:
        """The revert recorded; ``None`` when there is nothing of this deployment's to undo."""
        d = _deployment(tx.conn, self.deployment_id)
        f = s.channel_flips.c
        flip = tx.conn.execute(
            select(f.from_version, f.to_version)
            .where(
                f.channel == d.channel,
                f.stage == self.stage,
                f.deployment_id == d.id,
                f.kind == "flip",
            )
            .order_by(f.id.desc())
            .limit(1)
        ).first()
        if flip is None:
            return None
        st, m = s.channel_stages.c, s.channel_manifests.c
        owner = None
        if flip.from_version is not None:
            owner = tx.conn.execute(
                select(m.deployment_id).where(
                    m.channel == d.channel, m.version == flip.from_version
                )
            ).scalar()
        moved = tx.conn.execute(
            update(s.channel_stages)
            .where(
                st.channel == d.channel,
                st.stage == self.stage,
                st.version == flip.to_version,
                st.deployment_id == d.id,
            )
            .values(version=flip.from_version, deployment_id=owner, flipped_at=tx.now)
        ).rowcount
        if not moved:
            return None
        return _record_flip(tx, d, self.stage, "revert", flip.to_version, flip.from_version)


@dataclass
class FinishDeployment:
    """End a deployment: on success its manifest becomes the channel's head; either way
    the channel is let go and the next push in line is woken (idempotent)."""

    deployment_id: str
    succeeded: bool
    error: str | None = None

    def apply(self, tx: WriteTx) -> None:
        """Mark the deployment, move the head, release the turn, wake the next run."""
        d = _deployment(tx.conn, self.deployment_id)
        c, dd = s.channels.c, s.channel_deployments.c
        holder = _holder(tx.conn, d.channel)
        if self.succeeded:
            if holder != d.id:
                raise Conflict(f"deployment {d.id} does not hold channel {d.channel!r}")
            if d.manifest_version is None:
                raise InvalidState(f"deployment {d.id} has no manifest")
        if d.state in _OPEN:
            error = self.error
            if not self.succeeded and error is None:
                error = tx.conn.execute(
                    select(s.runs.c.error).where(s.runs.c.id == d.run_id)
                ).scalar()
            tx.conn.execute(
                update(s.channel_deployments)
                .where(dd.id == d.id)
                .values(
                    state=SUCCEEDED if self.succeeded else FAILED,
                    error=error,
                    finished_at=tx.now,
                )
            )
        if holder == d.id:
            values: dict[str, Any] = {"active_deployment": None, "updated_at": tx.now}
            if self.succeeded:
                values["head_version"] = d.manifest_version
            tx.conn.execute(
                update(s.channels)
                .where(c.name == d.channel, c.active_deployment == d.id)
                .values(**values)
            )
        following = tx.conn.execute(
            select(dd.run_id)
            .where(dd.channel == d.channel, dd.state == QUEUED, dd.seq > d.seq)
            .order_by(dd.seq)
            .limit(1)
        ).scalar()
        if following is not None:
            r = s.runs.c
            tx.conn.execute(
                update(s.runs)
                .where(r.id == following, r.status == "WAITING")
                .values(wake_at=tx.now, updated_at=tx.now)
            )
            tx.notify()


def _record_flip(
    tx: WriteTx,
    d: DeploymentRecord,
    stage: str,
    kind: str,
    from_version: int | None,
    to_version: int | None,
) -> FlipRecord:
    row: dict[str, Any] = {
        "channel": d.channel,
        "stage": stage,
        "deployment_id": d.id,
        "kind": kind,
        "from_version": from_version,
        "to_version": to_version,
        "at": tx.now,
    }
    new_id = tx.conn.execute(
        s.channel_flips.insert().values(row).returning(s.channel_flips.c.id)
    ).scalar_one()
    return FlipRecord(id=int(new_id), **row)


def _holder(conn: Any, channel: str) -> str | None:
    """The deployment holding the channel's turn."""
    c = s.channels.c
    found = conn.execute(select(c.active_deployment).where(c.name == channel)).scalar()
    return None if found is None else str(found)


def _deployment(conn: Any, deployment_id: str) -> DeploymentRecord:
    row = conn.execute(
        select(s.channel_deployments).where(s.channel_deployments.c.id == deployment_id)
    ).first()
    if row is None:
        raise ChannelNotFound(f"no deployment {deployment_id!r}")
    return DeploymentRecord(**row._mapping)


def _deployment_by_run(conn: Any, run_id: str) -> DeploymentRecord | None:
    dd = s.channel_deployments.c
    row = conn.execute(select(s.channel_deployments).where(dd.run_id == run_id)).first()
    return DeploymentRecord(**row._mapping) if row is not None else None


# -- reads ---------------------------------------------------------------------------------

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
        pt = s.push_tokens.c

        def run(conn: Any) -> None:
            if conn.execute(select(s.channels.c.name).where(s.channels.c.name == channel)).first():
                conn.execute(
                    delete(s.push_tokens).where(pt.channel == channel, pt.tenant == tenant)
                )
                if token_hash is not None:
                    conn.execute(
                        s.push_tokens.insert().values(
                            channel=channel, tenant=tenant, hash=token_hash, created_at=time.time()
                        )
                    )
                if audit is not None:
                    audit.insert(conn, time.time())
                return
            raise ChannelNotFound(f"no channel {channel!r}")

        self._store.write(run)

    def push_token_holder(self, token_hash: str) -> tuple[str, str] | None:
        """``(channel, tenant)`` of the push token with this hash."""
        pt = s.push_tokens.c
        stmt = select(pt.channel, pt.tenant).where(pt.hash == token_hash)
        row = self._store.read(lambda c: c.execute(stmt).first())
        return None if row is None else (str(row[0]), str(row[1]))
