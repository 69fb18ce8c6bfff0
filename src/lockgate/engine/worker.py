"""A worker: claims due runs with a lease and drives many of them at once on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Sequence

import structlog

from lockgate.core.masking import Masker
from lockgate.core.registry import Registry
from lockgate.core.statuses import StepStatus
from lockgate.engine.committer import Committer
from lockgate.engine.environment import Environment
from lockgate.engine.execution import RunExecution
from lockgate.engine.hosts import alive, default_worker_name
from lockgate.engine.running import RUNNING_WRITE_DELAY
from lockgate.errors import DatabaseUnavailable, LockgateError
from lockgate.observability.metrics import Metrics
from lockgate.observability.tracing import OFF, Tracer
from lockgate.records import Claimed, RunRecord, StepRecord
from lockgate.settings import Settings
from lockgate.store import Store
from lockgate.store.checkpoints import AppendLogs
from lockgate.store.leases import Claim, Forsake, Heartbeat, Release
from lockgate.store.runs import FlagUnrunnable
from lockgate.store.workers import StopWorker, TakeIdentity, WorkerRecord

#: How often buffered log lines of running steps are flushed for live viewers.
LOG_FLUSH_INTERVAL = 0.2
#: The longest wait between two tries while the database is out of reach (seconds).
MAX_OUTAGE_BACKOFF = 5.0


class Worker:
    """Runs pipelines' runs durably; any number of workers may share one database."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: Settings,
        *,
        mask: Masker | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer = OFF,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.mask = mask or Masker()
        self.metrics = metrics
        self.tracer = tracer
        #: The identity this worker asks for; :meth:`start` may add ``-2``, ``-3``... when a
        #: live process holds it.
        self.name = worker_id or settings.worker_name or default_worker_name(settings.database_url)
        self.id = self.name
        self.log = structlog.get_logger("lockgate.worker").bind(worker=self.id)
        self.committer = Committer(store)
        self._active: dict[str, tuple[RunExecution, asyncio.Task[None]]] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._withheld = False
        #: Runs were dropped because the database was out of reach (give them back).
        self._dropped = False
        #: Until when (UNIX time) this worker knows it holds each run's lease: from the
        #: claim, then from the start of each heartbeat that kept it.
        self._leases: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Register, start claiming, heart-beating and flushing logs."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.committer.start()
        await self._take_identity()
        names = [(p.namespace, p.name) for p in self.registry]
        flagged = await self.committer.apply(FlagUnrunnable(names, self.registry.versions()))
        if flagged:
            self.log.warning("runs of unregistered pipeline versions flagged", count=flagged)
        self.store.add_wake_listener(self.wake)
        listen = getattr(self.store, "listen", None)
        if listen is not None:
            listen(self.wake)
        for name, coro in (
            ("claim", self._claim_loop()),
            ("running", self._running_loop()),
            ("heartbeat", self._heartbeat_loop()),
            ("watch", self._watch_loop()),
        ):
            self._tasks.append(asyncio.create_task(coro, name=f"worker-{name}"))
        self.log.info("worker started", pipelines=len(self.registry))

    async def _take_identity(self) -> None:
        """Take the first free identity of ``name``, ``name-2``, ...: one whose holder
        stopped, missed its heartbeats, or was a process on this host that is gone. The
        runs an earlier incarnation held are taken back at once, with new fencing tokens;
        runs of other live workers wait for their leases to expire."""
        host, pid = socket.gethostname(), os.getpid()
        for n in range(1, 1000):
            candidate = self.name if n == 1 else f"{self.name}-{n}"
            held = await asyncio.to_thread(self.store.get_worker, candidate)
            if held is not None and self._in_use(held, host, pid):
                continue
            seen = None if held is None else (held.pid, held.started_at)
            taken = await self.committer.apply(TakeIdentity(candidate, host, pid, seen))
            if taken is None:
                continue  # another process took it between the read and the write
            self.id = candidate
            self.log = self.log.bind(worker=self.id)
            if taken:
                self.log.info("runs of this worker's last incarnation taken back", count=taken)
            return
        raise LockgateError(f"no free worker identity for {self.name!r}")

    def _in_use(self, held: WorkerRecord, host: str, pid: int) -> bool:
        if held.stopped_at is not None:
            return False
        if time.time() - held.heartbeat_at > self.settings.lease_seconds:
            return False  # its leases have expired anyway
        if held.hostname != host:
            return True  # a live worker elsewhere, as far as anyone here can tell
        return held.pid == pid or alive(held.pid)

    async def stop(self) -> None:
        """Stop claiming; let in-flight runs finish for a grace period, release the rest."""
        if self._stopping:
            return
        self._stopping = True
        self.wake()
        pending = [task for _, task in self._active.values()]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.shutdown_grace)
        for execution, task in list(self._active.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await self.committer.apply(Release(execution.run.id, execution.token))
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.committer.apply(StopWorker(self.id, os.getpid()))
        await self.committer.stop()
        self.log.info("worker stopped")

    async def kill(self) -> None:
        """Stop at once as if the process died: no releases, leases left to expire."""
        self._stopping = True
        for task in [t for _, t in self._active.values()] + self._tasks:
            task.cancel()
        for task in [t for _, t in self._active.values()] + self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.committer.stop()

    # -- wake-ups --------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due work now (safe to call from any thread)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    def environment(self) -> Environment:
        """What an execution of this worker sees of it (its identity as of now)."""
        return Environment(
            self.id,
            self.store,
            self.committer,
            self.settings,
            self.mask,
            self.metrics,
            self.log,
            self.wake_at,
            self._unreachable,
            self._lease_left,
            self.tracer,
        )

    def _lease_left(self, run_id: str) -> float:
        return self._leases.get(run_id, 0.0) - time.time()

    def _unreachable(self) -> None:
        """A run's write found the database out of reach: once it answers again, the runs
        dropped meanwhile are given back for claiming (:class:`Forsake`)."""
        self._dropped = True

    def wake_at(self, when: float) -> None:
        """Look for due work at UNIX time ``when`` (a local retry or sleep ends)."""
        if self._loop is not None:
            self._loop.call_later(max(0.0, when - time.time()), self.wake)

    def committing_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether this worker's committer is running on ``loop`` (and can take writes)."""
        return self._loop is loop and not self._stopping

    def can_adopt(self, version: str) -> bool:
        """Whether a run of ``version`` started in this process can be handed straight here."""
        return (
            self._loop is not None
            and not self._stopping
            and len(self._active) < self.settings.concurrency
            and self.registry.version(version) is not None
        )

    def adopt(self, run: RunRecord, step_names: Sequence[str]) -> None:
        """Drive a run created already leased to this worker (safe from any thread)."""
        steps = tuple(
            StepRecord(
                run.id, name, i, StepStatus.NOT_STARTED.value, 0, None, None, None, None, None, None
            )
            for i, name in enumerate(step_names)
        )
        # CreateRun recorded the first step's start (attempt 1) with the run.
        claimed = Claimed(run=run, steps=steps, started=(step_names[0], 1) if steps else None)
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the lease expires and any worker takes the run
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._launch(claimed)
        else:
            loop.call_soon_threadsafe(self._launch, claimed)

    @property
    def active(self) -> int:
        """Runs this worker is driving right now."""
        return len(self._active)

    # -- loops -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        assert self._wake is not None
        outage = 0.0  # the current backoff while the database is out of reach
        while not self._stopping:
            # Clear before fetching, never after: a hint that lands mid-claim is kept.
            self._wake.clear()
            free = self.settings.concurrency - len(self._active)
            # While busy, claim in batches rather than one run per finished run.
            enough = free >= max(1, self.settings.concurrency // 10) or not self._active
            self._withheld = not enough
            claimed: list[Claimed] = []
            if free > 0 and enough:
                try:
                    if self._dropped:
                        self._dropped = False
                        keep = list(self._active)
                        given = await self.committer.apply(Forsake(self.id, keep))
                        self.log.info("runs dropped while out of reach given back", count=given)
                    claimed = await self.committer.apply(
                        Claim(self.id, self.registry.versions(), free, self.settings.lease_seconds)
                    )
                except DatabaseUnavailable as exc:
                    self._dropped = True  # what was in flight may have been dropped too
                    if outage == 0:
                        self.log.warning("database out of reach; retrying", error=str(exc))
                    outage = min(MAX_OUTAGE_BACKOFF, max(self.settings.poll_interval, outage * 2))
                    await asyncio.sleep(outage)
                    continue
                except Exception as exc:
                    self.log.error("claim failed", error=str(exc))
                if outage:
                    self.log.info("database answers again")
                    outage = 0.0
            for item in claimed:
                self._launch(item)
            if claimed and len(claimed) == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    def _launch(self, claimed: Claimed) -> None:
        pipeline = self.registry.version(claimed.run.version)
        if pipeline is None or self._stopping:
            # A registry change or a shutdown raced us: give the run back.
            self.committer.submit(Release(claimed.run.id, claimed.run.lease_token))
            return
        self._leases[claimed.run.id] = claimed.run.lease_expires_at or 0.0
        execution = RunExecution(self.environment(), claimed, pipeline)
        task = asyncio.create_task(execution.execute(), name=f"run-{claimed.run.id}")
        execution.task = task
        self._active[claimed.run.id] = (execution, task)

        def done(t: asyncio.Task[None]) -> None:
            self._active.pop(claimed.run.id, None)
            self._leases.pop(claimed.run.id, None)
            if not t.cancelled() and t.exception() is not None:
                self.log.error("run crashed", run_id=claimed.run.id, error=repr(t.exception()))
            if self._withheld:
                self.wake()  # claims were held back for want of room; there is room now

        task.add_done_callback(done)

    async def _running_loop(self) -> None:
        """Write RUNNING for steps that outlived the short delay (fast steps never need it)."""
        while True:
            await asyncio.sleep(RUNNING_WRITE_DELAY)
            now = time.monotonic()
            for execution, _ in self._active.values():
                running = execution.running
                if running is not None and running.due(now):
                    running.write()

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = list(self._active)
            sent = time.time()
            try:
                lost = await self.committer.apply(
                    Heartbeat(self.id, ids, self.settings.lease_seconds)
                )
            except Exception as exc:
                self.log.error("heartbeat failed", error=str(exc))
                continue
            for run_id in set(ids) - lost:
                if run_id in self._leases:  # the lease runs from when the heartbeat began
                    self._leases[run_id] = sent + self.settings.lease_seconds
            for run_id in lost:
                entry = self._active.get(run_id)
                if entry is not None:
                    self.log.warning("lease lost; abandoning run", run_id=run_id)
                    entry[1].cancel()

    async def _watch_loop(self) -> None:
        """Flush live log lines and notice cancel requests for the runs held here."""
        last_cancel_check = 0.0
        while True:
            await asyncio.sleep(LOG_FLUSH_INTERVAL)
            rows = [row for ex, _ in self._active.values() for row in ex.logs.take()]
            if rows:
                self.committer.submit(AppendLogs(rows))
            now = time.monotonic()
            if self._active and now - last_cancel_check >= self.settings.cancel_poll_interval:
                last_cancel_check = now
                await self._check_cancels()

    async def _check_cancels(self) -> None:
        ids = [rid for rid, (ex, _) in self._active.items() if not ex.cancel_requested]
        if not ids:
            return
        try:
            wanted = await asyncio.to_thread(self.store.cancel_requested, ids)
        except Exception as exc:
            self.log.error("cancel check failed", error=str(exc))
            return
        for run_id in wanted:
            entry = self._active.get(run_id)
            if entry is not None:
                entry[0].cancel()
