"""Channels: their stages, manifests, deployments and flips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockgate.records.base import Record


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
    #: Pinned: promotions stop before this stage until it is unpinned.
    pinned: bool = False


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
