"""The store: the only place that knows SQL. Dialect subclasses differ only where the
databases do (engine set-up, conflict-tolerant inserts, claiming, wake-up hints)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, func, select, text, tuple_
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from lockgate.core.statuses import ACTIVE_RUN_STATUSES
from lockgate.errors import (
    DatabaseUnavailable,
    LockgateError,
    RunNotFound,
    SchemaMissing,
    StoreError,
)
from lockgate.records import (
    ApprovalRecord,
    AttemptRecord,
    AuditRecord,
    DecisionRecord,
    ErrorRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
    StepRecord,
)
from lockgate.settings import redacted
from lockgate.store import schema as s
from lockgate.store.approvals import approval_record, open_approvals_query
from lockgate.store.attempts import ATTEMPT_EVENTS, attempts_from
from lockgate.store.checkpoints import Checkpoint, apply_checkpoints
from lockgate.store.deliveries import Deliver, deliver_all
from lockgate.store.ops import RUN_BY_ID, Op, WriteTx, run_record, step_record
from lockgate.store.workers import WorkerRecord, get_worker_query, worker_record

T = TypeVar("T")

#: Upper bound of rows any list read returns.
MAX_PAGE = 1000

#: PostgreSQL's undefined table / column; SQLite says it in words.
_NO_SCHEMA = {"42P01", "42703"}
_NO_TABLE = ("no such table", "no such column")


class _Waiting:
    """An op a thread waits to see committed, and what it came to."""

    __slots__ = ("done", "op", "result")

    def __init__(self, op: Op[Any]) -> None:
        self.op = op
        self.result: Any = None
        self.done = False


class Store(ABC):
    """Runs, steps, events, logs and workers on one SQL database.

    Writes go through one writer connection per process (serialised by a lock), and a
    batch of ops shares one transaction: that is group commit. Reads use a pool.
    """

    dialect = "sql"
    skip_locked = False
    #: Whether a point read is a local file read that never waits on writers (SQLite in
    #: WAL mode): cheaper on the event loop than a hop to a thread.
    local_reads = False
    #: Whether writers on other connections go on at the same time (row locks, not one
    #: lock for the database): then background writes need not wait for the writer.
    concurrent_writers = False

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer_engine, self._reader_engine = self._make_engines(url)
        self._writer: Connection | None = None
        self._lock = threading.Lock()
        #: Ops from threads waiting for the writer, committed together (see apply).
        self._waiting: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._notify_listeners: list[Callable[[], None]] = []
        #: Write transactions committed by this process (for the benchmarks' counts).
        self.commits = 0

    # -- dialect hooks -------------------------------------------------------------------

    @abstractmethod
    def _make_engines(self, url: str) -> tuple[Engine, Engine]:
        """The (writer, reader) engines for ``url``."""

    @abstractmethod
    def insert(self, table: Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing``."""

    def driver_sql(self, sql: str) -> str:
        """``sql`` with ``:name`` placeholders in the driver's paramstyle."""
        return sql

    def _notify_peers(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Tell other processes there is new work (PostgreSQL NOTIFY); a hint only."""

    # -- writing -------------------------------------------------------------------------

    def add_wake_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after any commit in this process that made work due."""
        self._notify_listeners.append(fn)

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction on the writer connection."""
        with self._lock:
            return self._write_locked(fn)

    def _write_locked(self, fn: Callable[[Connection], T]) -> T:
        try:
            conn = self._writer_conn()
            with conn.begin():
                result = fn(conn)
        except SQLAlchemyError as exc:
            error = self._translate("write", exc)
            if isinstance(error, DatabaseUnavailable) and self._writer is not None:
                # A new connection next time (the pool's others are checked on checkout).
                with contextlib.suppress(SQLAlchemyError):
                    self._writer.invalidate()
                self._writer = None
            raise error from exc
        self.commits += 1
        return result

    def apply_aside(self, op: Op[T]) -> T:
        """Apply ``op`` as background work (retention): in a transaction of its own whose
        commit need not reach the disk before this returns. A crash may undo it (the work
        is found and done again); it can never undo a later commit, as both databases
        write their log in order. Where writers go on together (PostgreSQL) it runs
        beside the writer connection and never holds up the engine's commits; elsewhere
        it takes the writer between them, without waiting for a disk flush."""
        if not self.concurrent_writers:
            with self._lock, self._lazy_commits(self._writer_conn()):
                slots = self._write_locked(lambda conn: self._apply_all(conn, [op], [False]))
            if isinstance(slots[0], BaseException):
                raise slots[0]
            return slots[0]  # type: ignore[no-any-return]  # the slot holds the op's T
        try:
            with self._reader_engine.connect() as conn, conn.begin(), self._lazy_commits(conn):
                tx = WriteTx(
                    conn=conn,
                    now=time.time(),
                    insert=self.insert,
                    skip_locked=self.skip_locked,
                    notify=lambda: None,
                    driver_sql=self.driver_sql,
                )
                result = op.apply(tx)
                tx.flush()
                return result
        except SQLAlchemyError as exc:
            raise self._translate("write", exc) from exc

    @contextmanager
    def _lazy_commits(self, conn: Connection) -> Iterator[None]:
        """Commits on ``conn`` inside this block need not wait for the disk."""
        yield

    def apply(self, op: Op[T]) -> T:
        """Apply one op and raise its error. Threads applying at the same time share
        transactions (group commit): whichever holds the writer commits every op queued
        while it waited, so concurrent callers (REST requests deciding approvals, say)
        pay for one commit between them, not one each."""
        waiting = _Waiting(op)
        with self._queue_lock:
            self._waiting.append(waiting)
        with self._lock:
            if not waiting.done:
                with self._queue_lock:
                    batch, self._waiting = self._waiting, []
                try:
                    results = self._apply_batch_locked([w.op for w in batch])
                except BaseException as exc:  # every waiter hears of it, not only this one
                    results = [exc] * len(batch)
                for w, r in zip(batch, results, strict=True):
                    w.result, w.done = r, True
        result = waiting.result
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]  # the slot holds the op's T

    def apply_batch(self, ops: Sequence[Op[Any]]) -> list[Any]:
        """Apply ``ops`` in one transaction; each slot holds a result or the op's error.

        An op whose guard fails raises before it writes, so the rest still commit. Any
        other error aborts the shared transaction, and then each op is retried alone so
        that one bad op cannot sink its neighbours.
        """
        with self._lock:
            return self._apply_batch_locked(ops)

    def _apply_batch_locked(self, ops: Sequence[Op[Any]]) -> list[Any]:
        notified: list[bool] = [False]
        try:
            results = self._write_locked(lambda conn: self._apply_all(conn, ops, notified))
        except (StoreError, LockgateError) as exc:
            if len(ops) == 1 or isinstance(exc, DatabaseUnavailable):
                # Out of reach, the batch may even have committed: applying its ops again
                # one by one could apply them twice. Their callers read before going on.
                return [exc] * len(ops)
            return [self._apply_batch_locked([op])[0] for op in ops]
        if notified[0]:
            for fn in self._notify_listeners:
                fn()
        return results

    def _apply_all(
        self, conn: Connection, ops: Sequence[Op[Any]], notified: list[bool]
    ) -> list[Any]:
        def notify() -> None:
            notified[0] = True

        tx = WriteTx(
            conn=conn,
            now=time.time(),
            insert=self.insert,
            skip_locked=self.skip_locked,
            notify=notify,
            driver_sql=self.driver_sql,
        )
        results: list[Any] = []
        checkpoints: list[Checkpoint] = []
        # Deliveries depend on nothing else in the batch: they all go in together, where
        # the first one stands, with a few statements for all of them.
        deliveries = [i for i, op in enumerate(ops) if isinstance(op, Deliver)]
        delivered: dict[int, Any] = {}
        pending: list[int] = []  # result slots of the checkpoints not yet applied
        for i, op in enumerate(ops):
            if isinstance(op, Checkpoint):
                checkpoints.append(op)
                pending.append(len(results))
                results.append(None)
                continue
            if isinstance(op, Deliver):  # needs no ordering against checkpoints
                if not delivered:
                    outcomes = deliver_all(tx, [o for o in ops if isinstance(o, Deliver)])
                    delivered = dict(zip(deliveries, outcomes, strict=True))
                results.append(delivered[i])
                continue
            if checkpoints:  # keep order: earlier checkpoints land before this op
                for slot, outcome in zip(pending, apply_checkpoints(tx, checkpoints), strict=True):
                    results[slot] = outcome
                checkpoints, pending = [], []
            try:
                results.append(op.apply(tx))
            except LockgateError as exc:
                results.append(exc)
        if checkpoints:
            for slot, outcome in zip(pending, apply_checkpoints(tx, checkpoints), strict=True):
                results[slot] = outcome
        tx.flush()
        if notified[0]:
            self._notify_peers(conn)
        return results

    def _writer_conn(self) -> Connection:
        if self._writer is None or self._writer.closed:
            self._writer = self._writer_engine.connect()
        return self._writer

    # -- reading -------------------------------------------------------------------------

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a pooled read connection (one snapshot).

        Pooled connections are not pinged before use (a round trip per read); a read that
        finds its connection closed by the server (a restart) is tried once more on a new
        one, as the pool drops every connection it had on such an error.
        """
        try:
            try:
                with self._reader_engine.connect() as conn, conn.begin():
                    return fn(conn)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            with self._reader_engine.connect() as conn, conn.begin():
                return fn(conn)
        except SQLAlchemyError as exc:
            raise self._translate("read", exc) from exc

    def decision_targets(
        self, run_ids: Sequence[str], step: str | None
    ) -> dict[str, tuple[str, str | None, ApprovalRecord | None]]:
        """For each run of ``run_ids`` that exists, in one read: its status, its current
        step, and the approval request a decision would be on (``step``'s, or else the
        run's latest)."""
        r, a = s.runs.c, s.approvals.c
        ids = list(dict.fromkeys(run_ids))
        runs = select(r.id, r.status, r.current_step).where(r.id.in_(ids))
        asked = select(s.approvals).where(a.run_id.in_(ids)).order_by(a.opened_at)
        if step is not None:
            asked = asked.where(a.step == step)

        def both(c: Connection) -> tuple[list[Any], list[Any]]:
            return list(c.execute(runs).all()), list(c.execute(asked).all())

        found, requests = self.read(both)
        latest = {row.run_id: approval_record(row) for row in requests}  # the last wins
        return {row.id: (row.status, row.current_step, latest.get(row.id)) for row in found}

    def approval_state(
        self, run_id: str, step: str
    ) -> tuple[ApprovalRecord | None, list[DecisionRecord]]:
        """An approval step's stored request and its decisions so far, in one read."""
        a, d = s.approvals.c, s.decisions.c
        request = select(s.approvals).where(a.run_id == run_id, a.step == step)
        decided = select(s.decisions).where(d.run_id == run_id, d.step == step).order_by(d.id)

        def both(c: Connection) -> tuple[Any, list[Any]]:
            return c.execute(request).first(), list(c.execute(decided).all())

        row, rows = self.read(both)
        record = None if row is None else approval_record(row)
        return record, [DecisionRecord(**r._mapping) for r in rows]

    @property
    def display_url(self) -> str:
        """The database URL without its password, for messages."""
        return redacted(self.url)

    def _translate(self, what: str, exc: SQLAlchemyError) -> StoreError:
        """A one-line error: the schema missing (with the command that fixes it), or the
        driver's first line; never SQL text or bound values."""
        orig = getattr(exc, "orig", None) or exc
        text = str(orig)
        if getattr(orig, "sqlstate", None) in _NO_SCHEMA or any(s in text for s in _NO_TABLE):
            return SchemaMissing(
                f"database {self.display_url} has no lockgate schema or an older one: "
                "run `lockgate db upgrade`"
            )
        first = text.strip().splitlines()[0] if text.strip() else orig.__class__.__name__
        if self._unavailable(exc):
            return DatabaseUnavailable(f"database {what} failed: {first}")
        return StoreError(f"database {what} failed: {first}")

    def _unavailable(self, exc: SQLAlchemyError) -> bool:
        """Whether ``exc`` says the database is out of reach (not that it refused)."""
        return isinstance(exc, DBAPIError) and exc.connection_invalidated

    async def fetch_one_async(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a read, without blocking the event loop: here, in a thread
        (dialects with an async driver do better; a local one may read in place)."""
        if self.local_reads:
            return self._fetch_one(sql, params)
        return await asyncio.to_thread(self._fetch_one, sql, params)

    def _fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        row = self.read(lambda c: c.execute(text(sql), params).first())
        return None if row is None else tuple(row)

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; :class:`RunNotFound` if there is none."""
        row = self.read(lambda c: c.execute(RUN_BY_ID, {"id": run_id}).first())
        if row is None:
            raise RunNotFound(f"no run {run_id!r}")
        return run_record(row)

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        namespace: str | None = None,
        requested_by: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest runs first, filtered (``requested_by``: a prefix of who or what started
        the run; ``since``: created at or after); ``before`` is the (created_at, id) page
        cursor."""
        r = s.runs.c
        stmt = select(s.runs).order_by(r.created_at.desc(), r.id.desc())
        if status:
            stmt = stmt.where(r.status == status)
        if pipeline:
            stmt = stmt.where(r.pipeline == pipeline)
        if namespace:
            stmt = stmt.where(r.namespace == namespace)
        if requested_by:
            # What started it: "schedule:", "github:", a trigger's id, a person (a prefix).
            stmt = stmt.where(r.requested_by.startswith(requested_by, autoescape=True))
        if since is not None:
            stmt = stmt.where(r.created_at >= since)
        if before is not None:
            at, rid = before
            # A row-value comparison: both databases walk the (created_at, id) index from the
            # cursor (the equivalent OR of two comparisons made SQLite scan: 120 ms at 1M runs).
            stmt = stmt.where(tuple_(r.created_at, r.id) < tuple_(at, rid))
        stmt = stmt.limit(max(1, min(limit, MAX_PAGE)))
        return [run_record(row) for row in self.read(lambda c: c.execute(stmt).all())]

    def count_active(self) -> int:
        """Runs not yet finished."""
        active = [x.value for x in ACTIVE_RUN_STATUSES]
        stmt = select(func.count()).select_from(s.runs).where(s.runs.c.status.in_(active))
        return int(self.read(lambda c: c.execute(stmt).scalar_one()))

    def queue_stats(self, now: float) -> tuple[int, float | None]:
        """(runs due and not held by a worker, the oldest of their wake-up times)."""
        r = s.runs.c
        stmt = select(func.count(), func.min(r.wake_at)).where(
            r.wake_at <= now,
            r.status.in_([x.value for x in ACTIVE_RUN_STATUSES]),
            (r.lease_expires_at.is_(None)) | (r.lease_expires_at < now),
        )
        count, oldest = self.read(lambda c: c.execute(stmt).one())
        return int(count), oldest

    def cancel_requested(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` have a pending cancel request."""
        r = s.runs.c
        stmt = select(r.id).where(r.id.in_(list(run_ids)), r.cancel_requested.is_(True))
        return {str(x) for x in self.read(lambda c: c.execute(stmt).scalars().all())}

    def get_decisions(self, run_id: str, step: str | None = None) -> list[DecisionRecord]:
        """Decisions on a run's approval steps, oldest first."""
        d = s.decisions.c
        stmt = select(s.decisions).where(d.run_id == run_id).order_by(d.id)
        if step is not None:
            stmt = stmt.where(d.step == step)
        return [DecisionRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_approval(self, run_id: str, step: str | None = None) -> ApprovalRecord | None:
        """An approval step's stored request and outcome (``None`` until it asked); without
        ``step``, the run's latest."""
        a = s.approvals.c
        stmt = select(s.approvals).where(a.run_id == run_id)
        if step is not None:
            stmt = stmt.where(a.step == step)
        stmt = stmt.order_by(a.opened_at.desc()).limit(1)
        row = self.read(lambda c: c.execute(stmt).first())
        return None if row is None else approval_record(row)

    def pending_approvals(
        self, before: tuple[float, str, str] | None = None, limit: int = 100
    ) -> list[tuple[RunRecord, ApprovalRecord, list[DecisionRecord]]]:
        """Open approval steps with their runs and the decisions so far, oldest first
        (``before``: the ``(opened_at, run id, step)`` page cursor). Two queries however
        many there are: the inbox reads hundreds at once."""
        stmt = open_approvals_query(before, max(1, min(limit, MAX_PAGE)))
        stmt = stmt.add_columns(*[c.label(f"r__{c.name}") for c in s.runs.columns])

        def read(conn: Connection) -> tuple[list[Any], list[Any]]:
            rows = list(conn.execute(stmt).all())
            ids = sorted({row.run_id for row in rows})
            d = s.decisions.c
            decided = (
                list(conn.execute(select(s.decisions).where(d.run_id.in_(ids)).order_by(d.id)))
                if ids
                else []
            )
            return rows, decided

        rows, decided = self.read(read)
        by_step: dict[tuple[str, str], list[DecisionRecord]] = {}
        for row in decided:
            by_step.setdefault((row.run_id, row.step), []).append(DecisionRecord(**row._mapping))
        found = []
        for row in rows:
            m = row._mapping
            run = RunRecord(**{c.name: m[f"r__{c.name}"] for c in s.runs.columns})
            found.append((run, approval_record(row), by_step.get((row.run_id, row.step), [])))
        return found

    def get_audit(self, after: int = 0, limit: int = MAX_PAGE) -> list[AuditRecord]:
        """Audit entries after id ``after``, oldest first."""
        a = s.audit.c
        stmt = (
            select(s.audit).where(a.id > after).order_by(a.id).limit(max(1, min(limit, MAX_PAGE)))
        )
        return [AuditRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_events(self, run_id: str, after: int = 0, limit: int = MAX_PAGE) -> list[EventRecord]:
        """A run's events in order, after event id ``after``."""
        e = s.events.c
        stmt = (
            select(s.events)
            .where(e.run_id == run_id, e.id > after)
            .order_by(e.id)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        rows = self.read(lambda c: c.execute(stmt).all())
        return [EventRecord(**r._mapping) for r in rows]

    def get_worker(self, worker_id: str) -> WorkerRecord | None:
        """A worker identity and the process that last held it."""
        row = self.read(lambda c: c.execute(get_worker_query(worker_id)).first())
        return None if row is None else worker_record(row)

    def run_view(
        self, run_id: str
    ) -> tuple[RunRecord, list[StepRecord], list[AttemptRecord], list[ErrorRecord]]:
        """A run, its steps, their attempts and its errors, read in one snapshot (one
        connection, four statements); :class:`RunNotFound` if there is no such run."""
        e, x = s.events.c, s.run_errors.c
        steps = select(s.steps).where(s.steps.c.run_id == run_id).order_by(s.steps.c.position)
        started = (
            select(s.events)
            .where(e.run_id == run_id, e.attempt.is_not(None), e.status.in_(ATTEMPT_EVENTS))
            .order_by(e.id)
        )
        errors = select(s.run_errors).where(x.run_id == run_id).order_by(x.id).limit(MAX_PAGE)

        def read(c: Connection) -> tuple[Any, ...] | None:
            row = c.execute(RUN_BY_ID, {"id": run_id}).first()
            if row is None:
                return None
            return row, c.execute(steps).all(), c.execute(started).all(), c.execute(errors).all()

        found = self.read(read)
        if found is None:
            raise RunNotFound(f"no run {run_id!r}")
        run = run_record(found[0])
        step_records = [step_record(r) for r in found[1]]
        events = [EventRecord(**r._mapping) for r in found[2]]
        statuses = {st.name: st.status for st in step_records}
        return (
            run,
            step_records,
            attempts_from(events, run.status, statuses),
            [ErrorRecord(**r._mapping) for r in found[3]],
        )

    def get_errors(self, run_id: str) -> list[ErrorRecord]:
        """Errors raised in a run, in order."""
        e = s.run_errors.c
        stmt = select(s.run_errors).where(e.run_id == run_id).order_by(e.id).limit(MAX_PAGE)
        return [ErrorRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def get_logs(
        self, run_id: str, step: str | None = None, after: int = 0, limit: int = MAX_PAGE
    ) -> list[LogRecord]:
        """Log lines of a run (or one step) after line id ``after``."""
        g = s.step_logs.c
        stmt = select(s.step_logs).where(g.run_id == run_id, g.id > after)
        if step is not None:
            stmt = stmt.where(g.step == step)
        stmt = stmt.order_by(g.id).limit(max(1, min(limit, MAX_PAGE)))
        return [LogRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def pipeline_versions(self, name: str | None = None) -> list[PipelineRecord]:
        """Registered pipeline versions, newest first."""
        p = s.pipelines.c
        stmt = select(s.pipelines).order_by(p.registered_at.desc())
        if name is not None:
            stmt = stmt.where(p.name == name)
        return [PipelineRecord(**r._mapping) for r in self.read(lambda c: c.execute(stmt).all())]

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._writer_engine.dispose()
        self._reader_engine.dispose()
