"""Every table lockgate stores, defined once (SQLAlchemy Core): runs and their parts here,
the others by domain (:mod:`.schema_access`, :mod:`.schema_triggers`,
:mod:`.schema_channels`), all named here as ``schema.<table>``.

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
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lockgate.store.columns import Id, metadata
from lockgate.store.schema_access import audit, console_links, console_sessions, tokens
from lockgate.store.schema_channels import (
    channel_deployments,
    channel_flips,
    channel_manifests,
    channel_stages,
    channels,
    push_tokens,
)
from lockgate.store.schema_triggers import (
    deliveries,
    pollers,
    queues,
    schedules,
    triggers,
    webhook_replays,
)

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
    #: The run this one runs again (``lockgate runs rerun``), if it is a re-run.
    Column("rerun_of", String(32), nullable=True),
    #: The delivery (webhook, schedule tick, poll) that started it, if one did.
    Column("delivery_id", BigInteger, nullable=True),
    #: The W3C ``traceparent`` of the run's span (NULL: created with tracing off).
    Column("trace_context", String(55), nullable=True),
    #: The id of the run span's parent span (the request or message that started it).
    Column("trace_parent", String(16), nullable=True),
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

#: One row per approval step that asked for decisions: the request as rendered when the
#: step started, and how it was settled. Decisions on it are ordered by locking this row.
approvals = Table(
    "approvals",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(200), primary_key=True),
    #: message, approvers, required, allow_self_approval, on_timeout, input (rendered).
    Column("request", JSON, nullable=False),
    #: The subject that started the run (who may not approve it, unless allowed).
    Column("requested_by", String(200), nullable=True),
    Column("opened_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    #: ``approved``, ``rejected`` or ``timed_out`` once settled; NULL while open.
    Column("outcome", String(20), nullable=True),
    Column("settled_by", String(200), nullable=True),
    Column("settled_at", Float, nullable=True),
    Index("ix_approvals_open", "outcome", "opened_at"),
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


__all__ = [
    "Id",
    "approvals",
    "audit",
    "channel_deployments",
    "channel_flips",
    "channel_manifests",
    "channel_stages",
    "channels",
    "console_links",
    "console_sessions",
    "decisions",
    "deliveries",
    "events",
    "metadata",
    "pipelines",
    "pollers",
    "push_tokens",
    "queues",
    "run_errors",
    "runs",
    "schedules",
    "step_logs",
    "steps",
    "tokens",
    "triggers",
    "webhook_replays",
    "workers",
]
