"""Retention of runs: finished runs past their keep time are pruned in small batches, in the
background of ``lockgate server`` and on demand (``lockgate db prune``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import structlog

from lockgate.access.identity import Acting
from lockgate.core.periodic import every
from lockgate.observability.metrics import Metrics
from lockgate.settings import Settings
from lockgate.store import Store
from lockgate.store.audit import AppendAudit
from lockgate.store.retention import Policy, RunRetention

DAY = 86400.0
#: Candidates read at once, in batches.
READ_AHEAD = 20
#: The least pause between two batches of the server's own pass (seconds).
PAUSE = 0.05


class Retention(Acting):
    """Applies the retention settings to the runs in the store."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self._db = store
        self._runs = RunRetention(store)
        self._settings = settings
        self._metrics = metrics
        self._log = structlog.get_logger("lockgate.engine.retention")

    def policy(self, now: float | None = None) -> Policy:
        """The settings as of ``now``: a number of days of 0 keeps those runs for ever."""
        now = time.time() if now is None else now
        s = self._settings
        succeeded = s.retain_succeeded_days
        failed = s.retain_failed_days
        return Policy(
            succeeded_before=now - succeeded * DAY if succeeded > 0 else None,
            failed_before=now - failed * DAY if failed > 0 else None,
            keep_last=s.retain_last,
        )

    def prune(
        self,
        *,
        dry_run: bool = False,
        now: float | None = None,
        paced: bool = False,
        progress: Callable[[dict[str, int]], None] | None = None,
    ) -> dict[str, int]:
        """Delete the runs the policy lets go, ``prune_batch`` at a time (a short
        transaction each; ``paced``: with pauses between, so that retention takes at most
        ``prune_share`` of the writer's time); the number of runs of each status that went
        (with ``dry_run``: would go)."""
        policy = self.policy(now)
        floors = self._runs.newest_kept(policy.keep_last)
        batch = max(1, self._settings.prune_batch)
        share = self.share()
        gone: dict[str, int] = {}
        if dry_run:
            for _, status in self._runs.candidates(policy, 1 << 40, floors):
                gone[status] = gone.get(status, 0) + 1
            return gone
        while True:
            # One read finds many, then they go a batch per short transaction: the reads
            # cost Python time the workers of this process would otherwise have.
            found = self._runs.candidates(policy, batch * READ_AHEAD, floors)
            if not found:
                audit = self.identity.audit("runs.prune", None, gone)
                if gone and audit is not None:
                    self._db.apply(AppendAudit(audit))
                return gone
            for start in range(0, len(found), batch):
                chunk = found[start : start + batch]
                started = time.perf_counter()
                self._runs.delete([run_id for run_id, _ in chunk])
                took = time.perf_counter() - started
                counted = Counter(status for _, status in chunk)
                for status, n in counted.items():
                    gone[status] = gone.get(status, 0) + n
                    if self._metrics is not None:
                        self._metrics.runs_pruned.labels(status).inc(n)
                if progress is not None:
                    progress(gone)
                if paced:
                    # The deletes hold the writer (SQLite's one lock; PostgreSQL's disk and
                    # cores): a run that commits meanwhile waits. Sparse batches keep such
                    # runs rarer than the latency percentiles that matter.
                    time.sleep(max(PAUSE, took * (1 / share - 1)))

    def share(self) -> float:
        """The most of the database's time a paced pass takes (``prune_share``)."""
        share = self._settings.prune_share
        if share is None:
            share = 0.05 if self._db.concurrent_writers else 0.01
        return min(1.0, max(1e-4, share))

    def background_pass(self) -> None:
        """One pass as the server makes it: paced, and logged when it pruned anything."""
        gone = self.prune(paced=True)
        if gone:
            self._log.info("pruned runs", **gone)

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every ``prune_interval`` seconds until ``stop`` is set."""
        await every(stop, self._settings.prune_interval, self.background_pass, "pruning")
