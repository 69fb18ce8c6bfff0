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

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from lockgate.errors import (
    DatabaseUnavailable,
    LockgateError,
    SchemaMissing,
    StoreError,
)
from lockgate.settings import redacted
from lockgate.store.checkpoints import Checkpoint, apply_checkpoints
from lockgate.store.deliveries import Deliver, deliver_all
from lockgate.store.ops import Op, WriteTx
from lockgate.store.reads import StoreReads

T = TypeVar("T")


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


class Store(StoreReads, ABC):
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

    def _notify_peers(self, conn: Connection) -> None:
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

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._writer_engine.dispose()
        self._reader_engine.dispose()
