"""Retention: finished runs past their keep time go, in small batches, children first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, or_, select

from lockgate.core.statuses import RunStatus
from lockgate.store import schema as s
from lockgate.store.base import Store
from lockgate.store.ops import WriteTx

#: The tables that hang off a run (deleted before it, whatever the database's foreign keys).
CHILDREN = (s.steps, s.events, s.step_logs, s.run_errors, s.decisions, s.approvals)
SUCCEEDED = (RunStatus.SUCCEEDED.value,)
UNSUCCESSFUL = tuple(
    st.value
    for st in (
        RunStatus.FAILED,
        RunStatus.ROLLED_BACK,
        RunStatus.ROLLBACK_FAILED,
        RunStatus.CANCELLED,
    )
)


@dataclass(frozen=True)
class Policy:
    """What is kept: succeeded runs ``succeeded_before`` (a UNIX time: runs finished before
    it may go; ``None`` keeps them all), the others ``failed_before``, and always the newest
    ``keep_last`` runs of each pipeline. Channel deployments' runs are kept with them."""

    succeeded_before: float | None
    failed_before: float | None
    keep_last: int


@dataclass(frozen=True)
class DeleteRuns:
    """Delete runs (and everything recorded about them); how many went."""

    run_ids: Sequence[str]

    def apply(self, tx: WriteTx) -> int:
        ids = list(self.run_ids)
        if not ids:
            return 0
        for stmt in _DELETE_CHILDREN:
            tx.conn.execute(stmt, {"ids": ids})
        return int(tx.conn.execute(_DELETE_RUNS, {"ids": ids}).rowcount)


# Built once: a statement made per batch costs more Python than its SQL costs the database,
# and the writer is held meanwhile.
_DELETE_CHILDREN = [
    delete(t).where(t.c.run_id.in_(bindparam("ids", expanding=True))) for t in CHILDREN
]
_DELETE_RUNS = delete(s.runs).where(s.runs.c.id.in_(bindparam("ids", expanding=True)))


class RunRetention:
    """Finds and deletes the runs a :class:`Policy` lets go."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def candidates(
        self, policy: Policy, limit: int, floors: dict[tuple[str, str], float] | None = None
    ) -> list[tuple[str, str]]:
        """Up to ``limit`` ``(run id, status)`` pairs the policy lets go, oldest first per
        status. Each status is one range of the ``(status, created_at)`` index (a run is
        created before it finishes); ``floors`` is :meth:`newest_kept`, read once a pass."""
        r = s.runs.c
        floors = self.newest_kept(policy.keep_last) if floors is None else floors
        kept = [
            and_(r.namespace == ns, r.pipeline == name, r.created_at >= floor)
            for (ns, name), floor in floors.items()
        ]
        windows = [(SUCCEEDED, policy.succeeded_before), (UNSUCCESSFUL, policy.failed_before)]
        statements = []
        for statuses, before in windows:
            if before is None:
                continue
            for status in statuses:
                stmt = select(r.id, r.status).where(
                    r.status == status,
                    r.created_at < before,
                    r.finished_at < before,
                    r.namespace != "channel",
                )
                if kept:
                    stmt = stmt.where(~or_(*kept))
                statements.append(stmt.order_by(r.created_at).limit(limit))

        def read(conn: Connection) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            for stmt in statements:
                if len(found) >= limit:
                    break
                found += [(str(a), str(b)) for a, b in conn.execute(stmt).all()]
            return found[:limit]

        return self._store.read(read)

    def newest_kept(self, keep_last: int) -> dict[tuple[str, str], float]:
        """Per pipeline, the creation time of its ``keep_last``-th newest run (one indexed
        read per pipeline): its runs created since are kept."""
        if keep_last <= 0:
            return {}
        r = s.runs.c

        def read(conn: Connection) -> dict[tuple[str, str], float]:
            pipelines = conn.execute(select(r.namespace, r.pipeline).distinct()).all()
            floors = {}
            for ns, name in pipelines:
                floor = conn.execute(
                    select(r.created_at)
                    .where(r.namespace == ns, r.pipeline == name)
                    .order_by(r.created_at.desc())
                    .offset(keep_last - 1)
                    .limit(1)
                ).scalar()
                floors[(str(ns), str(name))] = float(floor) if floor is not None else float("-inf")
            return floors

        return self._store.read(read)

    def delete(self, run_ids: Sequence[str]) -> int:
        """Delete ``run_ids`` and what hangs off them in one short transaction."""
        return self._store.apply_aside(DeleteRuns(run_ids))
