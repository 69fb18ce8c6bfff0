"""The one interface every face calls, acting as one identity: :meth:`lockgate.App.acting`
in process (a subject and its roles), or :class:`lockgate.client.rest.RestClient` over REST
(whose identity is its token).

Nothing here takes who is acting: the client was made for them. The REST API and the console
call an App view acting as the request's token or signed-in person; the command line calls
one acting as ``--as`` (or the OS user), or the REST client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from lockgate.errors import LockgateError
from lockgate.records import (
    AuditRecord,
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
from lockgate.triggers.pollers import PollerSpec
from lockgate.triggers.queues import QueueSpec
from lockgate.triggers.schedules import ScheduleSpec
from lockgate.triggers.spec import Spec
from lockgate.triggers.webhooks import WebhookSpec

R = TypeVar("R")
S = TypeVar("S", bound=Spec, contravariant=True)


class Client(Protocol):
    """What the faces may ask of lockgate, as the identity the client acts as."""

    def start_run(
        self,
        name: str,
        params: Any = None,
        *,
        namespace: str = "default",
        noop: bool = False,
        idempotency_key: str | None = None,
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

    def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel a run."""

    def rerun(self, run_id: str, *, latest: bool = False) -> RunRecord:
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
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | LockgateError]:
        """One decision on many runs' approval steps (at most 1,000), in one transaction:
        each run's answer, or the error that refused it."""

    def resolve(self, run_id: str, action: str, *, comment: str | None = None) -> DecisionResult:
        """Retry, skip or roll back a run's failed step that waits for a decision."""

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[PendingApproval]:
        """Approval steps waiting for decisions, oldest first."""

    def approval(self, run_id: str, step: str | None = None) -> PendingApproval | None:
        """A run's latest approval request (or ``step``'s), with the decisions so far;
        ``None`` if it asked for none."""

    def audit_log(self, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Who did what, oldest first, after entry ``after``."""

    def prune(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete the finished runs past their keep time now (``dry_run``: count them)."""

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
    def deliveries(self) -> DeliveriesClient:
        """What triggers fired."""

    @property
    def webhooks(self) -> WebhooksClient:
        """Webhook triggers."""

    @property
    def schedules(self) -> TriggersClient[ScheduleRecord, ScheduleSpec]:
        """Cron and interval schedules."""

    @property
    def pollers(self) -> TriggersClient[PollerRecord, PollerSpec]:
        """Git pollers."""

    @property
    def queues(self) -> TriggersClient[QueueRecord, QueueSpec]:
        """Queue triggers (messages start runs)."""


class TokensClient(Protocol):
    """API tokens."""

    def create(
        self, name: str, role: str, *, subject: str | None = None
    ) -> tuple[TokenRecord, str]:
        """A token and its secret (shown once; only its hash is kept)."""

    def list(self) -> list[TokenRecord]:
        """Every token, newest first (never their secrets)."""

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token; it stops working at once."""


class SessionsClient(Protocol):
    """Web console sessions."""

    def list(self) -> list[SessionRecord]:
        """Live sessions, newest first."""

    def revoke(self, ref: str) -> SessionRecord:
        """End a live session (named by its ref) now."""


class DeliveriesClient(Protocol):
    """What triggers fired."""

    def list(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """Firings of a webhook trigger, a schedule, a poller or a queue, newest first."""

    def redeliver(self, delivery_id: int) -> dict[str, Any]:
        """Process a stored webhook or queue delivery again: ``delivery_id``, ``status``,
        ``run_ids`` and the ``error`` or ``reason`` if it started no run."""


class TriggersClient(Protocol[R, S]):
    """One kind of trigger, made from its spec (:mod:`lockgate.triggers.spec`)."""

    def create(self, spec: S | Mapping[str, Any] | None = None, /, **fields: Any) -> R:
        """A new one from its spec (or the spec's fields); every problem listed."""

    def update(
        self, row_id: str, change: BaseModel | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> R:
        """Change the fields given (a field left out, or ``None``, stays as it is)."""

    def list(self) -> list[R]:
        """Every one (at most a page)."""

    def get(self, row_id: str) -> R:
        """One by id."""

    def pause(self, row_id: str) -> R:
        """Stop it starting runs until resumed."""

    def resume(self, row_id: str) -> R:
        """Let a paused one start runs again."""

    def delete(self, row_id: str) -> None:
        """Remove it and its deliveries."""


class WebhooksClient(TriggersClient[TriggerRecord, WebhookSpec], Protocol):
    """Webhook triggers: a provider that signs nothing gets a URL token, on the created
    trigger's ``url_token`` (shown once)."""

    def rotate_secret(
        self, trigger_id: str, *, secret: str | None = None, overlap_seconds: float = 3600.0
    ) -> tuple[TriggerRecord, str]:
        """A new secret (or URL token), shown once; the old one verifies for a while."""


class ChannelsClient(Protocol):
    """Channels: push, stages, manifests, deployments."""

    def push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        idempotency_key: str | None = None,
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

    def rollback_stage(self, channel: str, stage: str, version: int) -> DeploymentRecord:
        """Queue a deployment pointing ``stage`` back at manifest ``version``."""

    def pin(self, channel: str, stage: str) -> StageRecord:
        """Stop promotions at ``stage``."""

    def unpin(self, channel: str, stage: str) -> StageRecord:
        """Let promotions reach ``stage`` again."""

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of the channel's stages, newest first."""

    def create_push_token(self, channel: str, tenant: str) -> str:
        """A tenant's push token (replacing its earlier one), shown once."""

    def revoke_push_token(self, channel: str, tenant: str) -> None:
        """Revoke a tenant's push token."""
