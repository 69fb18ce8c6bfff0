"""The one interface every CLI command calls: in-process on the database, or over REST."""

from __future__ import annotations

from typing import Any, Protocol

from lockgate.store.records import EventRecord, LogRecord, PipelineRecord, RunRecord


class RunViewLike(Protocol):
    """A run with its steps."""

    @property
    def run(self) -> RunRecord:
        """The run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""


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
