"""Worker identities: a stable name per worker, taken over by its next incarnation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from lockgate.store import schema as s
from lockgate.store.leases import give_back
from lockgate.store.ops import WriteTx


@dataclass(frozen=True)
class WorkerRecord:
    """A worker identity and the process that holds it."""

    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None


def worker_record(row: Any) -> WorkerRecord:
    """A ``workers`` row as a record."""
    m = row._mapping
    return WorkerRecord(**{c.name: m[c.name] for c in s.workers.columns})


@dataclass
class TakeIdentity:
    """Take worker identity ``worker_id`` for this process, if it is still as the caller
    saw it (``seen``: the holder's ``(pid, started_at)``, or ``None`` for a new one), and
    take back at once, with new fencing tokens, the runs its earlier incarnation held."""

    worker_id: str
    hostname: str
    pid: int
    seen: tuple[int, float] | None

    def apply(self, tx: WriteTx) -> int | None:
        """How many runs were taken back; ``None`` if another process took it first."""
        w = s.workers.c
        values = {
            "hostname": self.hostname,
            "pid": self.pid,
            "started_at": tx.now,
            "heartbeat_at": tx.now,
            "stopped_at": None,
        }
        if self.seen is None:
            done = tx.conn.execute(
                tx.insert(s.workers)
                .values(id=self.worker_id, **values)
                .on_conflict_do_nothing(index_elements=["id"])
            ).rowcount
        else:
            pid, started = self.seen
            done = tx.conn.execute(
                update(s.workers)
                .where(w.id == self.worker_id, w.pid == pid, w.started_at == started)
                .values(**values)
            ).rowcount
        if not done:
            return None
        return give_back(tx, self.worker_id)


@dataclass
class StopWorker:
    """Mark a worker identity free: its process stopped cleanly."""

    worker_id: str
    pid: int

    def apply(self, tx: WriteTx) -> None:
        """Set ``stopped_at`` if this process still holds the identity."""
        w = s.workers.c
        tx.conn.execute(
            update(s.workers)
            .where(w.id == self.worker_id, w.pid == self.pid)
            .values(stopped_at=tx.now, heartbeat_at=tx.now)
        )


def get_worker_query(worker_id: str) -> Any:
    """The statement reading one worker identity."""
    return select(s.workers).where(s.workers.c.id == worker_id)
