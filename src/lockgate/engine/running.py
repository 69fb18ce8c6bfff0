"""A step's RUNNING checkpoint, written only if the step outlives a short delay."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lockgate.core.statuses import StepStatus
from lockgate.engine.calls import EventRow, Row
from lockgate.engine.ledger import RunLedger
from lockgate.store.attempts import started_on
from lockgate.store.checkpoints import Checkpoint

#: A step still running after this long gets its RUNNING state written on its own.
RUNNING_WRITE_DELAY = 0.05


class RunningWrite:
    """The RUNNING checkpoint of a step, written only if the step outlives a short delay.

    Fast steps then cost one transaction (RUNNING and COMPLETED events land together);
    slow ones show as RUNNING within ``RUNNING_WRITE_DELAY``. Non-idempotent steps call
    :meth:`now` so that recovery can tell they were in flight.
    """

    def __init__(
        self,
        ledger: RunLedger,
        step: str,
        attempt: int,
        encoded_input: Any,
        started: float,
        recorded: bool = False,
    ) -> None:
        self.ledger = ledger
        self.step = step
        self.attempt = attempt
        self.encoded_input = encoded_input
        self.started = started
        #: Whether the attempt's RUNNING event is already stored (its start was recorded).
        self.recorded = recorded
        self.extra: list[EventRow] = []
        self.errors: list[Row] = []
        self._written: asyncio.Future[Any] | None = None
        self._t0 = time.monotonic()
        self._closed = False

    def due(self, now: float) -> bool:
        """Whether the step has run long enough to show as RUNNING (monotonic ``now``)."""
        return not self._closed and self._written is None and now - self._t0 >= RUNNING_WRITE_DELAY

    def write(self) -> asyncio.Future[Any]:
        """Submit the RUNNING checkpoint."""
        self._closed = True
        ledger = self.ledger
        cp = ledger.checkpoint(self.step)
        if not self.recorded:
            cp.events.append(
                (self.step, StepStatus.RUNNING, self.attempt, started_on(ledger.env.worker_id))
            )
            self.recorded = True
        cp.step_values = {
            "status": StepStatus.RUNNING.value,
            "attempt": self.attempt,
            "input": self.encoded_input,
            "started_at": self.started,
        }
        self._written = ledger.submit(cp)
        # Retrieved here too: a run abandoned mid-step never awaits this write.
        self._written.add_done_callback(lambda f: f.cancelled() or f.exception())
        ledger.remember(self.step, {"status": StepStatus.RUNNING.value, "attempt": self.attempt})
        return self._written

    async def now(self) -> None:
        """Write RUNNING at once and wait for it to commit."""
        await self.write()

    def cancel(self) -> None:
        """Do not write RUNNING later (the step already ended)."""
        self._closed = True

    def close_into(self, cp: Checkpoint) -> None:
        """Add what the step's closing checkpoint must carry (RUNNING, if never written)."""
        if self._written is None and not self.recorded:
            worker = self.ledger.env.worker_id
            cp.events.append(
                (self.step, StepStatus.RUNNING.value, self.attempt, started_on(worker))
            )
        cp.events.extend(self.extra)
        cp.errors.extend(self.errors)

    async def settled(self) -> None:
        """Wait for a RUNNING write in flight, raising its error (a stale lease)."""
        if self._written is not None:
            await self._written
