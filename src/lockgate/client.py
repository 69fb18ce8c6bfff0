"""The one interface every CLI command calls: in-process on the database, or over REST."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from lockgate.store.records import (
    DecisionRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
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
    ) -> DecisionRecord:
        """Approve or reject a waiting approval step."""

    def approvals(self) -> list[Any]:
        """Approval steps waiting for decisions."""
