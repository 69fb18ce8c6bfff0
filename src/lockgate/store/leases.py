"""Leases: claiming due runs with a fencing token (and recording each claimed run's next
attempt), heart-beating them, and giving them back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.sql.selectable import TextualSelect

from lockgate.core.statuses import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepStatus,
)
from lockgate.records import Claimed, RunRecord, StepRecord
from lockgate.store import schema as s
from lockgate.store.ops import (
    ACTIVE_SQL,
    RUN_COLUMNS,
    STEP_COLUMNS,
    WriteTx,
    event_row,
    run_record,
    started_event,
    step_record,
    typed,
)


def _claim_sql(skip_locked: bool) -> TextualSelect:
    # Hand-written: the claim runs on every poll, and building it with the expression
    # language cost about a millisecond of CPU per call.
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    sql = f"""
        UPDATE runs
           SET lease_owner = :owner, lease_token = lease_token + 1,
               lease_expires_at = :expires, flag = NULL
         WHERE id IN (
            SELECT id FROM runs
             WHERE wake_at <= :now
               AND status IN ({ACTIVE_SQL})
               AND (lease_expires_at IS NULL OR lease_expires_at < :now)
               AND version IN :versions
             ORDER BY wake_at
             LIMIT :limit{lock})
        RETURNING {RUN_COLUMNS}"""  # noqa: S608 - no user input in the text
    stmt = typed(sql, s.runs)
    return stmt.bindparams(bindparam("versions", expanding=True))


_CLAIM = {flag: _claim_sql(flag) for flag in (False, True)}
_CLAIMED_STEPS = typed(
    f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id IN :ids ORDER BY run_id, position",  # noqa: S608
    s.steps,
).bindparams(bindparam("ids", expanding=True))


@dataclass
class Claim:
    """Lease up to ``limit`` due runs of the given versions to ``worker_id``."""

    worker_id: str
    versions: Sequence[str]
    limit: int
    lease_seconds: float

    def apply(self, tx: WriteTx) -> list[Claimed]:
        """The runs now held, each with a new fencing token and its steps."""
        if self.limit <= 0 or not self.versions:
            return []
        rows = tx.conn.execute(
            _CLAIM[tx.skip_locked],
            {
                "owner": self.worker_id,
                "expires": tx.now + self.lease_seconds,
                "now": tx.now,
                "versions": list(self.versions),
                "limit": self.limit,
            },
        ).all()
        if not rows:
            return []
        claimed = [run_record(row) for row in rows]
        by_run: dict[str, list[StepRecord]] = defaultdict(list)
        for row in tx.conn.execute(_CLAIMED_STEPS, {"ids": [c.id for c in claimed]}):
            rec = step_record(row)
            by_run[rec.run_id].append(rec)
        starts = self._starts(tx, claimed, by_run)
        return [Claimed(c, tuple(by_run[c.id]), starts.get(c.id)) for c in claimed]

    def _starts(
        self, tx: WriteTx, claimed: Sequence[RunRecord], by_run: dict[str, list[StepRecord]]
    ) -> dict[str, tuple[str, int]]:
        """Record the start of each claimed run's next step (and of a PENDING run), numbered
        past every attempt started before: some may have been lost with their worker."""
        nexts: dict[str, StepRecord] = {}
        pending = {run.id: run.status == RunStatus.PENDING.value for run in claimed}
        for run in claimed:
            if run.status == RunStatus.ROLLING_BACK.value or run.cancel_requested:
                continue
            rec = next((st for st in by_run[run.id] if st.status not in _DONE), None)
            if rec is not None and rec.status in _STARTABLE:
                nexts[run.id] = rec
        if not nexts:
            return {}
        seen = tx.conn.execute(
            _LAST_STARTED, {"ids": list(nexts), "running": StepStatus.RUNNING.value}
        ).all()
        last = {(row[0], row[1]): int(row[2] or 0) for row in seen}
        starts: dict[str, tuple[str, int]] = {}
        for run_id, rec in nexts.items():
            attempt = max(rec.attempt, last.get((run_id, rec.name), 0)) + 1
            if pending[run_id]:  # the run starts with it
                tx.defer(s.events, [event_row(run_id, None, RunStatus.RUNNING, None, None, tx.now)])
            tx.defer(s.events, [started_event(run_id, rec.name, attempt, self.worker_id, tx.now)])
            starts[run_id] = (rec.name, attempt)
        return starts


#: Step statuses a run has finished with, going forward.
_DONE = {StepStatus.COMPLETED.value, StepStatus.SKIPPED.value}
#: Statuses of a next step that starts a new attempt when claimed (a WAITING step goes on
#: as the same attempt; a RUNNING one was lost in flight, and the engine decides).
_STARTABLE = {StepStatus.NOT_STARTED.value, StepStatus.RETRYING.value}
_LAST_STARTED = text(
    "SELECT run_id, step, MAX(attempt) FROM events "
    "WHERE run_id IN :ids AND status = :running GROUP BY run_id, step"
).bindparams(bindparam("ids", expanding=True))


@dataclass
class Heartbeat:
    """Extend the leases this worker still holds and report the ones it lost."""

    worker_id: str
    run_ids: Sequence[str]
    lease_seconds: float

    def apply(self, tx: WriteTx) -> set[str]:
        """Ids of the runs lost: held by another worker now, or by none while unfinished.
        A run that finished since the worker looked is not lost (its last commit let go
        of the lease)."""
        tx.conn.execute(
            update(s.workers).where(s.workers.c.id == self.worker_id).values(heartbeat_at=tx.now)
        )
        if not self.run_ids:
            return set()
        r = s.runs.c
        rows = tx.conn.execute(
            update(s.runs)
            .where(r.id.in_(list(self.run_ids)), r.lease_owner == self.worker_id)
            .values(lease_expires_at=tx.now + self.lease_seconds)
            .returning(r.id)
        )
        missing = set(self.run_ids) - {str(x) for x in rows.scalars()}
        if not missing:
            return set()
        finished = [st.value for st in TERMINAL_RUN_STATUSES]
        done = tx.conn.execute(select(r.id).where(r.id.in_(list(missing)), r.status.in_(finished)))
        return missing - {str(x) for x in done.scalars()}


@dataclass
class Forsake:
    """Give back, with new fencing tokens, the runs ``worker_id`` holds but is not driving
    (``keep``): the ones it dropped when the database went out of reach, so that any worker
    (itself too) claims them at once instead of after their leases expire."""

    worker_id: str
    keep: Sequence[str]

    def apply(self, tx: WriteTx) -> int:
        """How many runs were given back."""
        return give_back(tx, self.worker_id, self.keep)


def give_back(tx: WriteTx, worker_id: str, keep: Sequence[str] = ()) -> int:
    """Free the unfinished runs ``worker_id`` holds (but those in ``keep``), with new
    fencing tokens, for any worker to claim at once; how many."""
    r = s.runs.c
    stmt = update(s.runs).where(
        r.lease_owner == worker_id,
        r.status.in_([st.value for st in ACTIVE_RUN_STATUSES]),
    )
    if keep:
        stmt = stmt.where(r.id.not_in(list(keep)))
    given = tx.conn.execute(
        stmt.values(
            lease_owner=None,
            lease_expires_at=None,
            lease_token=r.lease_token + 1,
            updated_at=tx.now,
        )
    ).rowcount
    if given:
        tx.notify()
    return int(given)


@dataclass
class Release:
    """Give a held run back (worker shutdown) so any worker can resume it at once."""

    run_id: str
    token: int

    def apply(self, tx: WriteTx) -> None:
        """Clear the lease if it is still ours."""
        r = s.runs.c
        tx.conn.execute(
            update(s.runs)
            .where(r.id == self.run_id, r.lease_token == self.token)
            .values(lease_owner=None, lease_expires_at=None, updated_at=tx.now)
        )
        tx.notify()
