"""A deployment's moves of its channel's stages: a flip (a stage now serves the deployment's
manifest) and a revert (a failed stage test flips it back); each recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from lockgate.errors import ChannelNotFound, Conflict, InvalidState
from lockgate.records import DeploymentRecord, FlipRecord
from lockgate.store import schema as s
from lockgate.store.channel_ops import deployment_of, turn_holder
from lockgate.store.ops import WriteTx


@dataclass
class Flip:
    """Point a stage at the deployment's manifest: compare-and-set, recorded as a flip."""

    deployment_id: str
    stage: str

    def apply(self, tx: WriteTx) -> FlipRecord | None:
        """The flip recorded; ``None`` when this deployment had already flipped the stage."""
        d = deployment_of(tx.conn, self.deployment_id)
        if d.manifest_version is None:
            raise InvalidState(f"deployment {d.id} has no manifest to flip to")
        if turn_holder(tx.conn, d.channel) != d.id:
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
        return record_flip(tx, d, self.stage, "flip", current.version, d.manifest_version)


@dataclass
class Revert:
    """Put a stage back where it was before this deployment flipped it (idempotent)."""

    deployment_id: str
    stage: str

    def apply(self, tx: WriteTx) -> FlipRecord | None:
        """The revert recorded; ``None`` when there is nothing of this deployment's to undo."""
        d = deployment_of(tx.conn, self.deployment_id)
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
        return record_flip(tx, d, self.stage, "revert", flip.to_version, flip.from_version)


def record_flip(
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
