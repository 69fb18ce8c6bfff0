"""Plain records: what the store returns and every face shows (rows never leave the store).

A neutral module: the store, the engine, the services and the faces all import it; it
imports nothing of lockgate's but the model."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from lockgate.settings import redacted


class Record:
    """Shared by the records: a shallow ``to_dict`` (``asdict`` deep-copies, slowly)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunRecord(Record):
    """One run as stored."""

    id: str
    namespace: str
    pipeline: str
    version: str
    status: str
    params: Any
    context: dict[str, Any]
    noop: bool
    requested_by: str | None
    idempotency_key: str | None
    current_step: str | None
    error: str | None
    cancel_requested: bool
    flag: str | None
    lease_owner: str | None
    lease_token: int
    lease_expires_at: float | None
    wake_at: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    #: The run this one runs again, if it is a re-run.
    rerun_of: str | None = None
    #: The delivery (a webhook's, a schedule's tick, a poll) that started it, if one did.
    delivery_id: int | None = None
    #: The W3C ``traceparent`` of the run's span, if it was created with tracing on.
    trace_context: str | None = None
    #: The id of the run span's parent (the request or message that started it).
    trace_parent: str | None = None


@dataclass(frozen=True)
class StepRecord(Record):
    """One step of one run as stored."""

    run_id: str
    name: str
    position: int
    status: str
    attempt: int
    input: Any
    output: Any
    saved: Any
    error: str | None
    started_at: float | None
    finished_at: float | None
    wait_until: float | None = None


@dataclass(frozen=True)
class EventRecord(Record):
    """One appended state change."""

    id: int
    run_id: str
    step: str | None
    status: str
    attempt: int | None
    message: str | None
    at: float


@dataclass(frozen=True)
class LogRecord(Record):
    """One line of a step's log."""

    id: int
    run_id: str
    step: str
    level: str
    message: str
    at: float


@dataclass(frozen=True)
class ErrorRecord(Record):
    """One error raised in a run."""

    id: int
    run_id: str
    step: str | None
    attempt: int | None
    kind: str
    message: str
    traceback: str | None
    at: float


@dataclass(frozen=True)
class Claimed(Record):
    """A run a worker now holds, with its steps, read in the claiming transaction."""

    run: RunRecord
    steps: tuple[StepRecord, ...]
    #: ``(step, attempt)`` whose start the claiming transaction recorded.
    started: tuple[str, int] | None = None


@dataclass(frozen=True)
class PipelineRecord(Record):
    """One registered pipeline version."""

    version: str
    namespace: str
    name: str
    definition: dict[str, Any]
    registered_at: float


@dataclass(frozen=True)
class DecisionRecord(Record):
    """One person's decision on a waiting approval step."""

    id: int
    run_id: str
    step: str
    decision: str
    by: str
    comment: str | None
    input: Any
    at: float


@dataclass(frozen=True)
class ApprovalRecord(Record):
    """An approval step's request, rendered when the step started, and its outcome."""

    run_id: str
    step: str
    request: dict[str, Any]
    requested_by: str | None
    opened_at: float
    expires_at: float | None
    outcome: str | None
    settled_by: str | None
    settled_at: float | None


@dataclass(frozen=True)
class DecisionResult(Record):
    """A decision that counted, and whether it settled its step (and how)."""

    decision: DecisionRecord
    settled: bool
    outcome: str | None

    def to_dict(self) -> dict[str, Any]:
        """The decision's fields plus ``settled`` and ``outcome``."""
        return {**self.decision.to_dict(), "settled": self.settled, "outcome": self.outcome}


@dataclass(frozen=True)
class AttemptRecord(Record):
    """One execution of a step: who ran it, when, and how it ended."""

    step: str
    attempt: int
    worker: str | None
    started_at: float
    ended_at: float | None
    #: completed, failed, retried, cancelled, waiting, running, or lost (with its worker).
    outcome: str


@dataclass(frozen=True)
class TokenRecord(Record):
    """An API token (never its secret)."""

    id: str
    name: str
    role: str
    hash: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    #: The person or machine the token acts for (its name when not set).
    subject: str | None = None

    @property
    def identity(self) -> str:
        """Who acts with this token: decisions and audit entries are recorded under it."""
        return self.subject or self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, without the hash."""
        data = super().to_dict()
        data.pop("hash")
        return data


@dataclass(frozen=True)
class AuditRecord(Record):
    """One audited action."""

    id: int
    at: float
    actor: str
    action: str
    target: str | None
    details: Any


@dataclass(frozen=True)
class TriggerRecord(Record):
    """A trigger (its secret is never shown)."""

    id: str
    provider: str
    namespace: str
    pipeline: str
    secret: str | None
    events: list[str]
    branches: list[str]
    params: dict[str, Any]
    allow_ips: list[str]
    enabled: bool
    created_at: float
    #: The secret before the last rotation, still accepted until ``previous_until``.
    previous_secret: str | None = None
    previous_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, without the secrets."""
        data = super().to_dict()
        data["secret"] = "***" if self.secret else None
        data["previous_secret"] = "***" if self.previous_secret else None
        return data


@dataclass(frozen=True)
class SessionRecord(Record):
    """A signed-in web console session (the cookie itself is never stored)."""

    id: str
    subject: str
    role: str
    token_id: str | None
    csrf: str
    created_at: float
    expires_at: float
    ended_at: float | None
    last_seen_at: float | None = None
    #: A note for the next page (what an action did), shown once.
    flash: str | None = None

    @property
    def ref(self) -> str:
        """How people name the session (a prefix of its id, itself a hash of the cookie)."""
        return self.id[:16]

    def public(self) -> dict[str, object]:
        """What an admin sees of it: never the cookie's hash or the CSRF secret."""
        return {
            "ref": self.ref,
            "subject": self.subject,
            "role": self.role,
            "token_id": self.token_id,
            "created_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "expires_at": self.expires_at,
            "ended_at": self.ended_at,
        }


@dataclass(frozen=True)
class DeliveryRecord(Record):
    """One firing of a trigger."""

    id: int
    trigger_id: str
    key: str
    status: str
    attempts: int
    error: str | None
    event: Any
    payload: Any
    run_ids: list[str]
    received_at: float
    updated_at: float
    #: ``webhook``, ``schedule``, ``poller`` or ``queue``.
    source: str = "webhook"
    #: SHA-256 of a webhook's signed body (deduplication).
    body_sha256: str | None = None


@dataclass(frozen=True)
class QueueRecord(Record):
    """A message queue (a Redis stream or a RabbitMQ queue) whose messages start runs."""

    id: str
    namespace: str
    pipeline: str
    broker: str
    url: str
    source: str
    dead_letter: str
    consumer_group: str
    match: dict[str, list[str]]
    params: dict[str, Any]
    batch_size: int
    claim_after: float
    last_error: str | None
    enabled: bool
    created_at: float
    #: The name of the secret holding the broker's password (never the secret).
    credentials: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; a password in the URL is masked."""
        data = super().to_dict()
        data["url"] = redacted(self.url)
        return data


@dataclass(frozen=True)
class ScheduleRecord(Record):
    """A cron or interval schedule."""

    id: str
    namespace: str
    pipeline: str
    cron: str | None
    timezone: str
    interval_seconds: float | None
    misfire: str
    params: dict[str, Any]
    next_fire_at: float
    enabled: bool
    created_at: float


@dataclass(frozen=True)
class PollerRecord(Record):
    """A git repository polled for new commits."""

    id: str
    namespace: str
    pipeline: str
    repository: str
    refs: list[str]
    interval_seconds: float
    params: dict[str, Any]
    seen: dict[str, str] | None
    next_poll_at: float
    last_error: str | None
    enabled: bool
    created_at: float
    #: The name of the secret holding the repository's credentials (never the secret).
    credentials: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; credentials in the repository URL are masked."""
        data = super().to_dict()
        data["repository"] = redacted(self.repository, user_is_secret=True)
        return data


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
