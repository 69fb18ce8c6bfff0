"""What starts runs without a person: triggers, deliveries, replays, schedules, pollers,
queues."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lockgate.store.columns import Id, metadata

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
