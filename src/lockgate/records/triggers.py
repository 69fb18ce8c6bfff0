"""What starts runs without a person: webhook triggers, schedules, pollers, queues,
and what each fired."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockgate.records.base import Record
from lockgate.settings import redacted


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
    #: The token the URL of a provider that signs nothing must carry: on the record that
    #: creating the trigger returns, only (shown once: only its hash is kept).
    url_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, without the secrets (but the URL token it was created with)."""
        data = super().to_dict()
        data["secret"] = "***" if self.secret else None
        data["previous_secret"] = "***" if self.previous_secret else None
        if self.url_token is None:
            del data["url_token"]
        return data


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
