"""Every table lockgate stores, defined once (SQLAlchemy Core).

Times are UNIX epoch seconds (float) so that lease and wake-up comparisons are the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: Auto-increment ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

pipelines = Table(
    "pipelines",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("registered_at", Float, nullable=False),
    Index("ix_pipelines_name", "namespace", "name", "registered_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("pipeline", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("params", JSON, nullable=True),
    Column("context", JSON, nullable=False),
    Column("noop", Boolean, nullable=False, default=False),
    Column("requested_by", String(200), nullable=True),
    Column("idempotency_key", String(300), nullable=True, unique=True),
    Column("current_step", String(200), nullable=True),
    Column("error", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    #: Why a worker could not run it (e.g. its pipeline version is not registered).
    Column("flag", Text, nullable=True),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_token", BigInteger, nullable=False, default=0),
    Column("lease_expires_at", Float, nullable=True),
    #: When the run is next due for a worker; NULL once finished or parked without timeout.
    Column("wake_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index(
        "ix_runs_due",
        "wake_at",
        sqlite_where=Column("wake_at").isnot(None),
        postgresql_where=Column("wake_at").isnot(None),
    ),
    Index("ix_runs_created", "created_at", "id"),
    Index("ix_runs_pipeline", "namespace", "pipeline", "created_at"),
    Index("ix_runs_status", "status", "created_at"),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("input", JSON, nullable=True),
    Column("output", JSON, nullable=True),
    #: Data the step kept for its own rollback (``ctx.save``).
    Column("saved", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    #: When a step parked by ``ctx.sleep`` may go on (kept across re-runs of its body).
    Column("wait_until", Float, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=True),
    Column("message", Text, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_events_run", "run_id", "id"),
)

run_errors = Table(
    "run_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("kind", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("traceback", Text, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_run_errors_run", "run_id", "id"),
)

step_logs = Table(
    "step_logs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_step_logs_run", "run_id", "step", "id"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    #: ``approve`` or ``reject``.
    Column("decision", String(10), nullable=False),
    Column("by", String(200), nullable=False),
    Column("comment", Text, nullable=True),
    Column("input", JSON, nullable=True),
    Column("at", Float, nullable=False),
    UniqueConstraint("run_id", "step", "by", name="uq_decisions_once_per_person"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    #: SHA-256 (hex) of the whole token; the token itself is shown once and never stored.
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
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

triggers = Table(
    "triggers",
    metadata,
    #: Unguessable: it is the webhook URL's secret part too (Gerrit signs nothing).
    Column("id", String(64), primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("namespace", String(200), nullable=False),
    Column("pipeline", String(200), nullable=False),
    #: The shared secret for signatures; never returned by the API.
    Column("secret", Text, nullable=True),
    Column("events", JSON, nullable=False),
    Column("branches", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    #: Source addresses/networks allowed to deliver (empty: any); for unsigned senders.
    Column("allow_ips", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trigger_id", String(64), ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False),
    #: The provider's delivery id (or a hash of the body): one delivery per key per trigger.
    Column("key", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("event", JSON, nullable=True),
    #: The decoded body, kept so that a delivery can be processed again.
    Column("payload", JSON, nullable=True),
    Column("run_ids", JSON, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("trigger_id", "key", name="uq_deliveries_once"),
    Index("ix_deliveries_trigger", "trigger_id", "id"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("pipeline", String(200), nullable=False),
    #: Either a cron expression (with ``timezone``) or an interval in seconds.
    Column("cron", String(200), nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("interval_seconds", Float, nullable=True),
    #: After downtime: ``skip`` the missed ticks, or ``run_once`` for all of them.
    Column("misfire", String(10), nullable=False),
    Column("params", JSON, nullable=False),
    #: The next tick (UNIX time); advanced by compare-and-set so each tick fires once.
    Column("next_fire_at", Float, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Index("ix_schedules_due", "next_fire_at"),
)

pollers = Table(
    "pollers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("pipeline", String(200), nullable=False),
    Column("repository", Text, nullable=False),
    #: Globs over ref names (``refs/heads/main``, ``refs/tags/v*``).
    Column("refs", JSON, nullable=False),
    Column("interval_seconds", Float, nullable=False),
    Column("params", JSON, nullable=False),
    #: Ref -> commit seen by the last poll; NULL until the first (baseline) poll.
    Column("seen", JSON, nullable=True),
    Column("next_poll_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    UniqueConstraint("hostname", "pid", "started_at", name="uq_workers_process"),
)
