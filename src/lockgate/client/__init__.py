"""The one interface every CLI command calls: in-process on the database, or over REST."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from lockgate.errors import LockgateError
from lockgate.records import (
    ChannelRecord,
    DecisionResult,
    DeliveryRecord,
    DeploymentRecord,
    EventRecord,
    FlipRecord,
    LogRecord,
    ManifestRecord,
    PipelineRecord,
    PollerRecord,
    QueueRecord,
    RunRecord,
    ScheduleRecord,
    SessionRecord,
    StageRecord,
    TokenRecord,
    TriggerRecord,
)
from lockgate.records.views import PendingApproval, RunView, StageManifest

R = TypeVar("R")


class Client(Protocol):
    """What the faces may ask of lockgate; :class:`lockgate.App` is the in-process one."""

    def start_run(
        self,
        name: str,
        params: Any = None,
        *,
        namespace: str = "default",
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        actor: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Start a run (``context``: the first values of its context bag)."""

    def get_run(self, run_id: str) -> RunView:
        """A run with its steps, their attempts, and its errors."""

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        namespace: str | None = None,
        requested_by: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs, newest first; ``before``: ``(created_at, id)`` of the previous page's last."""

    def events(self, run_id: str, after: int = 0) -> list[EventRecord]:
        """A run's events."""

    def logs(self, run_id: str, step: str | None = None, after: int = 0) -> list[LogRecord]:
        """A run's log lines."""

    def cancel_run(self, run_id: str, *, by: str | None = None) -> RunRecord:
        """Cancel a run."""

    def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
        requested_by: str | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        """Start a new run with a finished run's params (same version unless ``latest``)."""

    def pipelines(self) -> list[PipelineRecord]:
        """Registered pipeline versions."""

    def pipeline_versions(self, name: str) -> list[PipelineRecord]:
        """The registered versions of one pipeline, newest first."""

    def decide(
        self,
        run_id: str,
        decision: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Approve or reject a waiting approval step; says whether it settled the step."""

    def decide_many(
        self,
        run_ids: Sequence[str],
        decision: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | LockgateError]:
        """One decision on many runs' approval steps (at most 1,000), in one transaction:
        each run's answer, or the error that refused it."""

    def resolve(
        self,
        run_id: str,
        action: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        comment: str | None = None,
    ) -> DecisionResult:
        """Retry, skip or roll back a run's failed step that waits for a decision."""

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[PendingApproval]:
        """Approval steps waiting for decisions, oldest first."""

    def approval(self, run_id: str, step: str | None = None) -> PendingApproval | None:
        """A run's latest approval request (or ``step``'s), with the decisions so far;
        ``None`` if it asked for none."""

    def deliveries(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """Firings of a webhook trigger, a schedule or a poller, newest first."""

    @property
    def channels(self) -> ChannelsClient:
        """Channels: push, stages, manifests, deployments."""

    @property
    def tokens(self) -> TokensClient:
        """API tokens."""

    @property
    def sessions(self) -> SessionsClient:
        """Web console sessions."""

    @property
    def webhooks(self) -> WebhooksClient:
        """Webhook triggers."""

    @property
    def schedules(self) -> SchedulesClient:
        """Cron and interval schedules."""

    @property
    def pollers(self) -> PollersClient:
        """Git pollers."""

    @property
    def queues(self) -> QueuesClient:
        """Queue triggers (messages start runs)."""


class TokensClient(Protocol):
    """API tokens; ``App.tokens`` is the in-process one."""

    def create(
        self, name: str, role: str, *, subject: str | None = None, actor: str = "local"
    ) -> tuple[TokenRecord, str]:
        """A token and its secret (shown once; only its hash is kept)."""

    def list(self) -> list[TokenRecord]:
        """Every token, newest first (never their secrets)."""

    def revoke(self, token_id: str, *, actor: str = "local") -> TokenRecord:
        """Revoke a token; it stops working at once."""


class SessionsClient(Protocol):
    """Web console sessions; ``App.sessions`` is the in-process one."""

    def list(self) -> list[SessionRecord]:
        """Live sessions, newest first."""

    def revoke(self, ref: str, *, actor: str) -> SessionRecord:
        """End a live session (named by its ref) now."""


class ManagedClient(Protocol[R]):
    """What every kind of trigger offers: read, pause, resume, delete (audited as ``actor``)."""

    def list(self) -> list[R]:
        """Every one (at most a page)."""

    def get(self, row_id: str) -> R:
        """One by id."""

    def pause(self, row_id: str, *, actor: str | None = None) -> R:
        """Stop it starting runs until resumed."""

    def resume(self, row_id: str, *, actor: str | None = None) -> R:
        """Let a paused one start runs again."""

    def delete(self, row_id: str, *, actor: str | None = None) -> None:
        """Remove it and its deliveries."""


class WebhooksClient(ManagedClient[TriggerRecord], Protocol):
    """Webhook triggers; ``App.webhooks`` is the in-process one."""

    def create(
        self,
        provider: str,
        pipeline: str,
        *,
        secret: str | None,
        namespace: str = "default",
        events: Sequence[str] = (),
        branches: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] = (),
        actor: str | None = None,
    ) -> tuple[TriggerRecord, str | None]:
        """A trigger, and the URL token of a provider that signs nothing (shown once)."""

    def update(
        self,
        trigger_id: str,
        *,
        pipeline: str | None = None,
        namespace: str | None = None,
        events: Sequence[str] | None = None,
        branches: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] | None = None,
        actor: str | None = None,
    ) -> TriggerRecord:
        """Change a trigger (``None``: unchanged)."""

    def rotate_secret(
        self,
        trigger_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: float = 3600.0,
        actor: str | None = None,
    ) -> tuple[TriggerRecord, str]:
        """A new secret (or URL token), shown once; the old one verifies for a while."""

    def redeliver(self, delivery_id: int, *, actor: str | None = None) -> dict[str, Any]:
        """Process a stored webhook delivery again: ``delivery_id``, ``status``, ``run_ids``
        and the ``error`` or ``reason`` if it started no run."""


class SchedulesClient(ManagedClient[ScheduleRecord], Protocol):
    """Schedules; ``App.schedules`` is the in-process one."""

    def create(
        self,
        pipeline: str,
        *,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str = "UTC",
        misfire: str = "skip",
        namespace: str = "default",
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> ScheduleRecord:
        """A schedule."""

    def update(
        self,
        schedule_id: str,
        *,
        pipeline: str | None = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str | None = None,
        misfire: str | None = None,
        namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> ScheduleRecord:
        """Change a schedule (``None``: unchanged)."""


class PollersClient(ManagedClient[PollerRecord], Protocol):
    """Git pollers; ``App.pollers`` is the in-process one."""

    def create(
        self,
        pipeline: str,
        repository: str,
        *,
        refs: Sequence[str] = ("refs/heads/*",),
        interval_seconds: float = 60.0,
        namespace: str = "default",
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        credentials: str | None = None,
    ) -> PollerRecord:
        """A poller (``credentials``: the name of a secret holding user:password)."""

    def update(
        self,
        poller_id: str,
        *,
        pipeline: str | None = None,
        repository: str | None = None,
        refs: Sequence[str] | None = None,
        interval_seconds: float | None = None,
        namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        credentials: str | None = None,
    ) -> PollerRecord:
        """Change a poller (``None``: unchanged)."""


class QueuesClient(ManagedClient[QueueRecord], Protocol):
    """Queue triggers; ``App.queues`` is the in-process one."""

    def create(
        self,
        pipeline: str,
        broker: str,
        url: str,
        source: str,
        *,
        dead_letter: str | None = None,
        consumer_group: str = "lockgate",
        match: Mapping[str, list[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        batch_size: int = 100,
        claim_after: float = 30.0,
        namespace: str = "default",
        credentials: str | None = None,
        actor: str | None = None,
    ) -> QueueRecord:
        """A queue trigger (``credentials``: the name of a secret holding the password)."""

    def update(
        self,
        queue_id: str,
        *,
        pipeline: str | None = None,
        namespace: str | None = None,
        url: str | None = None,
        source: str | None = None,
        dead_letter: str | None = None,
        consumer_group: str | None = None,
        match: Mapping[str, list[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        claim_after: float | None = None,
        credentials: str | None = None,
        actor: str | None = None,
    ) -> QueueRecord:
        """Change a queue trigger (``None``: unchanged)."""


class ChannelsClient(Protocol):
    """The channel half of :class:`Client`; ``App.channels`` is the in-process one."""

    def push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> DeploymentRecord:
        """Queue a deployment of a tenant's content."""

    def registered(self) -> list[ChannelRecord]:
        """Every channel registered in the database, by name."""

    def stages(self, channel: str) -> list[StageRecord]:
        """Every stage and the manifest version it serves."""

    def stage_manifest(self, channel: str, stage: str) -> StageManifest:
        """The manifest a stage serves now."""

    def manifest(self, channel: str, version: int) -> ManifestRecord:
        """One manifest by version."""

    def history(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[ManifestRecord]:
        """Manifests, newest first."""

    def deployments(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first."""

    def deployment(self, deployment_id: str) -> DeploymentRecord:
        """One deployment."""

    def rollback_stage(
        self,
        channel: str,
        stage: str,
        version: int,
        *,
        requested_by: str | None = None,
        actor: str | None = None,
    ) -> DeploymentRecord:
        """Queue a deployment pointing ``stage`` back at manifest ``version``."""

    def pin(self, channel: str, stage: str, *, actor: str | None = None) -> StageRecord:
        """Stop promotions at ``stage``."""

    def unpin(self, channel: str, stage: str, *, actor: str | None = None) -> StageRecord:
        """Let promotions reach ``stage`` again."""

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of the channel's stages, newest first."""

    def create_push_token(self, channel: str, tenant: str, *, actor: str | None = None) -> str:
        """A tenant's push token (replacing its earlier one), shown once."""

    def revoke_push_token(self, channel: str, tenant: str, *, actor: str | None = None) -> None:
        """Revoke a tenant's push token."""
