"""Every execution of every step, read back from the events.

An attempt begins with its RUNNING event, recorded before the attempt runs (by the claim or
by the checkpoint of the step before), and ends with the first event that closes it. An
attempt nothing closed was lost with its worker, unless it is the one running now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lockgate.core.statuses import RunStatus, StepStatus
from lockgate.records import AttemptRecord, EventRecord

#: The events that end an attempt, and how it ended.
_ENDS = {
    StepStatus.COMPLETED.value: "completed",
    StepStatus.FAILED.value: "failed",
    StepStatus.RETRYING.value: "retried",
    StepStatus.CANCELLED.value: "cancelled",
}
_PREFIX = "on "
#: The events an attempt's history is read from.
ATTEMPT_EVENTS = (StepStatus.RUNNING.value, *_ENDS)


def started_on(worker: str) -> str:
    """The message of a RUNNING event: which worker runs the attempt."""
    return f"{_PREFIX}{worker}"


def attempts_from(
    events: Iterable[EventRecord], run_status: str, step_statuses: Mapping[str, str]
) -> list[AttemptRecord]:
    """The attempts in ``events`` (a run's, oldest first), in the order they started."""
    starts: dict[tuple[str, int], EventRecord] = {}
    ends: dict[tuple[str, int], EventRecord] = {}
    for e in events:
        if e.step is None or e.attempt is None:
            continue
        key = (e.step, e.attempt)
        if e.status == StepStatus.RUNNING.value:
            starts.setdefault(key, e)
        elif e.status in _ENDS and key in starts:
            ends.setdefault(key, e)
    latest: dict[str, int] = {}
    for step, attempt in starts:
        latest[step] = max(latest.get(step, 0), attempt)
    active = not RunStatus(run_status).terminal
    found = []
    for key, start in starts.items():
        step, attempt = key
        end = ends.get(key)
        if end is not None:
            outcome = _ENDS[end.status]
        elif active and latest[step] == attempt:
            waiting = step_statuses.get(step) == StepStatus.WAITING.value
            outcome = "waiting" if waiting else "running"
        else:
            outcome = "lost"
        message = start.message or ""
        worker = message[len(_PREFIX) :] if message.startswith(_PREFIX) else None
        found.append(
            AttemptRecord(
                step=step,
                attempt=attempt,
                worker=worker,
                started_at=start.at,
                ended_at=end.at if end is not None else None,
                outcome=outcome,
            )
        )
    return found
