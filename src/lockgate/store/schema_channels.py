"""Channels: their stages, manifests, push tokens, deployments and flips."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from lockgate.store.columns import Id, metadata

channels = Table(
    "channels",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("definition", JSON, nullable=False),
    #: The manifest of the last successful deployment: what the next push merges onto.
    Column("head_version", Integer, nullable=True),
    #: Counters, advanced under the row's write lock: push order and manifest versions.
    Column("last_seq", Integer, nullable=False),
    Column("last_version", Integer, nullable=False),
    #: The deployment holding the channel's turn (one at a time).
    Column("active_deployment", String(32), nullable=True),
    Column("public_read", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Push tokens: each bound to one channel and one tenant, stored as a SHA-256 hash.
push_tokens = Table(
    "push_tokens",
    metadata,
    Column(
        "channel",
        String(200),
        ForeignKey("channels.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tenant", String(200), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

channel_stages = Table(
    "channel_stages",
    metadata,
    Column("channel", String(200), primary_key=True),
    Column("stage", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    #: The manifest this stage serves; NULL until the first flip.
    Column("version", Integer, nullable=True),
    Column("deployment_id", String(32), nullable=True),
    Column("flipped_at", Float, nullable=True),
    #: Pinned: promotions stop before this stage until it is unpinned.
    Column("pinned", Boolean, nullable=False, default=False, server_default=false()),
)

channel_manifests = Table(
    "channel_manifests",
    metadata,
    Column("channel", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("parent", Integer, nullable=True),
    Column("deployment_id", String(32), nullable=False),
    #: SHA-256 of ``body``: the ETag.
    Column("hash", String(64), nullable=False),
    #: Canonical JSON text, served as stored.
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

channel_deployments = Table(
    "channel_deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("channel", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("command", String(50), nullable=False),
    Column("run_id", String(32), nullable=False),
    #: QUEUED, ACTIVE, SUCCEEDED, FAILED.
    Column("state", String(20), nullable=False),
    Column("manifest_version", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("requested_by", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    UniqueConstraint("channel", "seq", name="uq_channel_deployments_seq"),
    Index("ix_channel_deployments_run", "run_id"),
)

channel_flips = Table(
    "channel_flips",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(200), nullable=False),
    Column("stage", String(200), nullable=False),
    Column("deployment_id", String(32), nullable=False),
    #: ``flip`` (forward) or ``revert`` (a failed deployment putting a stage back).
    Column("kind", String(10), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_channel_flips_stage", "channel", "stage", "id"),
)
