"""Channel writes: registering channels, pushes, turns, manifests, flips and their reverts,
and finishing deployments; each a guarded op that can share a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update

from lockgate.core.statuses import OPEN_DEPLOYMENTS, TERMINAL_RUN_STATUSES, DeploymentState
from lockgate.errors import ChannelNotFound, Conflict, InvalidState
from lockgate.records import (
    DeploymentRecord,
    ManifestRecord,
    RunRecord,
)
from lockgate.store import schema as s
from lockgate.store.ops import WriteTx
from lockgate.store.runs import CreateRun

#: Deployment states; a deployment's run carries the detail (steps, events, logs).
QUEUED, ACTIVE = DeploymentState.QUEUED.value, DeploymentState.ACTIVE.value
SUCCEEDED, FAILED = DeploymentState.SUCCEEDED.value, DeploymentState.FAILED.value

_OPEN = tuple(s.value for s in OPEN_DEPLOYMENTS)
_TERMINAL = tuple(sorted(st.value for st in TERMINAL_RUN_STATUSES))


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
        d = deployment_of(tx.conn, self.deployment_id)
        if d.state not in _OPEN:
            raise InvalidState(f"deployment {d.id} is {d.state}")
        c = s.channels.c
        holder = turn_holder(tx.conn, d.channel)
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
        d = deployment_of(tx.conn, self.deployment_id)
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
class FinishDeployment:
    """End a deployment: on success its manifest becomes the channel's head; either way
    the channel is let go and the next push in line is woken (idempotent)."""

    deployment_id: str
    succeeded: bool
    error: str | None = None
    #: False for a stage's rollback: the channel's head (what pushes merge onto) stays.
    move_head: bool = True

    def apply(self, tx: WriteTx) -> None:
        """Mark the deployment, move the head, release the turn, wake the next run."""
        d = deployment_of(tx.conn, self.deployment_id)
        c, dd = s.channels.c, s.channel_deployments.c
        holder = turn_holder(tx.conn, d.channel)
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
            if self.succeeded and self.move_head:
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


def turn_holder(conn: Any, channel: str) -> str | None:
    """The deployment holding the channel's turn."""
    c = s.channels.c
    found = conn.execute(select(c.active_deployment).where(c.name == channel)).scalar()
    return None if found is None else str(found)


def deployment_of(conn: Any, deployment_id: str) -> DeploymentRecord:
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


@dataclass
class UseManifest:
    """Make an earlier manifest the one a deployment flips to (a stage's rollback)."""

    deployment_id: str
    version: int

    def apply(self, tx: WriteTx) -> ManifestRecord:
        """The manifest; :class:`ChannelNotFound` if the channel has no such version."""
        d = deployment_of(tx.conn, self.deployment_id)
        m = s.channel_manifests.c
        found = tx.conn.execute(
            select(s.channel_manifests).where(m.channel == d.channel, m.version == self.version)
        ).first()
        if found is None:
            raise ChannelNotFound(f"channel {d.channel!r} has no manifest version {self.version}")
        if d.manifest_version != self.version:
            tx.conn.execute(
                update(s.channel_deployments)
                .where(s.channel_deployments.c.id == d.id)
                .values(manifest_version=self.version)
            )
        return ManifestRecord(**found._mapping)
