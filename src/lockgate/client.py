"""The one interface every CLI command calls: in-process on the database, or over REST."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from lockgate.channels.service import StageManifest
from lockgate.records import (
    DecisionResult,
    DeploymentRecord,
    EventRecord,
    LogRecord,
    ManifestRecord,
    PipelineRecord,
    RunRecord,
    StageRecord,
)


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
    ) -> RunRecord:
        """Start a run."""

    def get_run(self, run_id: str) -> Any:
        """A run with its steps."""

    def list_runs(self, **filters: Any) -> list[RunRecord]:
        """Runs, newest first."""

    def events(self, run_id: str, after: int = 0) -> list[EventRecord]:
        """A run's events."""

    def logs(self, run_id: str, step: str | None = None, after: int = 0) -> list[LogRecord]:
        """A run's log lines."""

    def cancel_run(self, run_id: str, *, by: str | None = None) -> RunRecord:
        """Cancel a run."""

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

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[Any]:
        """Approval steps waiting for decisions, oldest first."""

    @property
    def channels(self) -> ChannelsClient:
        """Channels: push, stages, manifests, deployments."""


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
