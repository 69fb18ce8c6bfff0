"""Runs, their steps, attempts, events, logs and errors; approvals and their decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockgate.records.base import Record


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
