"""Run and step statuses; events only ever append one of these."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True once the run will never change again."""
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.ROLLED_BACK,
        RunStatus.ROLLBACK_FAILED,
        RunStatus.CANCELLED,
    }
)
ACTIVE_RUN_STATUSES = frozenset(set(RunStatus) - TERMINAL_RUN_STATUSES)


class StepStatus(StrEnum):
    """Where one step of a run is."""

    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


class DeliveryStatus(StrEnum):
    """What became of a trigger's firing (a webhook delivery, a schedule tick, a poll)."""

    #: Stored; its processing had not finished (a crash leaves it for the retry routine).
    RECEIVED = "RECEIVED"
    #: Taken for processing again by the retry routine or a redelivery.
    PROCESSING = "PROCESSING"
    #: Its run was started (``run_ids``).
    DONE = "DONE"
    #: Its run could not start: bad params, a template that does not render, no pipeline.
    FAILED = "FAILED"
    #: Left out on purpose: a trigger's filters, or a tick skipped by its misfire policy.
    REJECTED = "REJECTED"


#: Deliveries the retry routine may take again (with attempts left, for FAILED).
RETRYABLE_DELIVERIES = (DeliveryStatus.RECEIVED, DeliveryStatus.PROCESSING)


class DeploymentState(StrEnum):
    """Where a channel's deployment is: they run one at a time per channel, in push order."""

    QUEUED = "QUEUED"
    ACTIVE = "ACTIVE"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


#: Deployments that still hold or wait for their channel's turn.
OPEN_DEPLOYMENTS = (DeploymentState.QUEUED, DeploymentState.ACTIVE)
