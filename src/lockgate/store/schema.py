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
    false,
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
    #: The secret (or URL token hash) before the last rotation, accepted until
    #: ``previous_until`` so that a provider can be switched over without lost deliveries.
    Column("previous_secret", Text, nullable=True),
    Column("previous_until", Float, nullable=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    #: The webhook trigger, schedule or poller that fired (``source`` says which).
    Column("trigger_id", String(64), nullable=False),
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
    #: ``webhook``, ``schedule`` or ``poller``.
    Column("source", String(10), nullable=False, server_default="webhook"),
    #: SHA-256 of a webhook's signed body: the same body is one delivery, whatever its
    #: (unsigned) delivery-id header says.
    Column("body_sha256", String(64), nullable=True),
    UniqueConstraint("trigger_id", "key", name="uq_deliveries_once"),
    Index("ix_deliveries_trigger", "trigger_id", "id"),
    Index("ix_deliveries_body", "trigger_id", "body_sha256"),
)

#: The replay guard of webhook triggers, kept apart from delivery retention (its own
#: window, ``webhook_replay_days``): what each delivery was identified by (a hash of its
#: signed body, or of its signed unique id), and the delivery it was.
webhook_replays = Table(
    "webhook_replays",
    metadata,
    Column("trigger_id", String(64), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Column("delivery_id", BigInteger, nullable=False),
    Index("ix_webhook_replays_seen", "seen_at"),
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
    #: The name of the secret (``user:password`` or ``user:token``) sent to an http(s)
    #: repository; never the secret itself, never in the URL.
    Column("credentials", String(200), nullable=True),
)

queues = Table(
    "queues",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("pipeline", String(200), nullable=False),
    #: ``redis`` (a stream read by a consumer group) or ``rabbitmq`` (a queue).
    Column("broker", String(20), nullable=False),
    #: The broker's address, with no password in it (``credentials`` names one).
    Column("url", Text, nullable=False),
    #: The stream or queue messages are read from.
    Column("source", String(200), nullable=False),
    #: Where a message that cannot start a run goes, with the reason.
    Column("dead_letter", String(200), nullable=False),
    #: Redis: the consumer group every lockgate server reads in.
    Column("consumer_group", String(200), nullable=False),
    #: Dotted paths into the message (``body.env``, ``headers.kind``) -> globs it must match.
    Column("match", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    #: Messages taken at once (RabbitMQ prefetch; Redis COUNT) and committed together.
    Column("batch_size", Integer, nullable=False),
    #: Redis: seconds a message may stay unacknowledged with a consumer before another
    #: takes it over (its consumer died).
    Column("claim_after", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    #: The name of the secret holding the broker's password (never the secret).
    Column("credentials", String(200), nullable=True),
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
