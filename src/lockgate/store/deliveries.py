"""Deliveries: the firings of triggers, stored once per key and per signed body, with their
runs, a few statements for a whole batch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    select,
)

from lockgate.errors import (
    LockgateError,
    NotFound,
)
from lockgate.records import RunRecord
from lockgate.store import schema as s
from lockgate.store.ops import ROWS_PER_INSERT, WriteTx, json_text
from lockgate.store.runs import CreateRun, create_runs


@dataclass
class Deliver:
    """One firing (a webhook delivery, a schedule tick, a poll) in one transaction: stored
    once per key, its run started."""

    trigger_id: str
    key: str
    event: Any
    payload: Any
    create: CreateRun | None
    status: str
    error: str | None = None
    #: ``webhook``, ``schedule`` or ``poller``.
    source: str = "webhook"
    #: What identifies a webhook delivery against replays (SHA-256, hex, of its signed body
    #: or of its signed unique id): one seen before, within the replay window, is a
    #: duplicate whatever its unsigned delivery id says.
    replay: str | None = None

    def apply(self, tx: WriteTx) -> tuple[int, str, list[str], bool, RunRecord | None]:
        """``(delivery id, status, run ids, created, run)``; a known key returns the first.

        A webhook's trigger must still exist and be enabled (the caller checked it from a
        cache): :class:`NotFound` otherwise, with nothing written.
        """
        result = deliver_all(tx, [self])[0]
        if isinstance(result, LockgateError):
            raise result
        return result  # type: ignore[no-any-return]


def deliver_all(tx: WriteTx, ops: Sequence[Deliver]) -> list[Any]:
    """Apply many deliveries with a few statements in all (group commit for intake): the
    triggers checked in one query, the deliveries inserted in one, their runs in one.

    Each slot holds the op's result, or :class:`NotFound` for a webhook whose trigger is
    gone or disabled (that op writes nothing).
    """
    results: list[Any] = [None] * len(ops)
    webhooks = sorted({op.trigger_id for op in ops if op.source == "webhook"})
    live: set[str] = set()
    for start in range(0, len(webhooks), ROWS_PER_INSERT):
        ids = webhooks[start : start + ROWS_PER_INSERT]
        marks = ", ".join(f":t{n}" for n in range(len(ids)))
        rows = tx.fetch_rows(
            f"SELECT id FROM triggers WHERE enabled AND id IN ({marks})",  # noqa: S608
            {f"t{n}": tid for n, tid in enumerate(ids)},
        )
        live.update(row[0] for row in rows)
    todo = []
    for i, op in enumerate(ops):
        if op.source == "webhook" and op.trigger_id not in live:
            results[i] = NotFound("no such trigger")
        else:
            todo.append(i)
    todo, repeats = _replays(tx, ops, todo, results)
    new_rows = [
        {
            "trigger_id": ops[i].trigger_id,
            "key": ops[i].key,
            "status": ops[i].status,
            "attempts": 1,
            "error": ops[i].error,
            "event": json_text(ops[i].event),
            "payload": json_text(ops[i].payload),
            "run_ids": json_text([c.run_id] if (c := ops[i].create) is not None else []),
            "received_at": tx.now,
            "updated_at": tx.now,
            "source": ops[i].source,
            "body_sha256": ops[i].replay,
        }
        for i in todo
    ]
    returned = tx.insert_rows(s.deliveries, new_rows, "trigger_id, key", "id, trigger_id, key")
    stored = {(row[1], row[2]): int(row[0]) for row in returned}
    # A key stored by this batch belongs to its first op; later ones are duplicates.
    owners: dict[tuple[str, str], int] = {}
    creating = []
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.key)
        if where in stored and where not in owners:
            owners[where] = i
            if op.create is not None:
                creating.append(i)
    for i in creating:  # each run records the delivery that started it
        create = ops[i].create
        if create is not None:
            create.delivery_id = stored[(ops[i].trigger_id, ops[i].key)]
    creates = [c for c in (ops[i].create for i in creating) if c is not None]
    runs = dict(zip(creating, create_runs(tx, creates), strict=True))
    guarded = [  # the replay guard remembers each new delivery's identity
        {
            "trigger_id": ops[i].trigger_id,
            "digest": ops[i].replay,
            "seen_at": tx.now,
            "delivery_id": stored[where],
        }
        for where, i in owners.items()
        if ops[i].replay is not None
    ]
    if guarded:
        tx.insert_rows(s.webhook_replays, guarded, "trigger_id, digest", "digest")
    d = s.deliveries.c
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.key)
        if owners.get(where) != i:
            if where in owners:  # the same key twice in this batch
                first = ops[owners[where]]
                ids = [runs[owners[where]][0].id] if owners[where] in runs else []
                results[i] = (stored[where], first.status, ids, False, None)
                continue
            found = tx.conn.execute(
                select(d.id, d.status, d.run_ids).where(
                    d.trigger_id == op.trigger_id, d.key == op.key
                )
            ).one()
            results[i] = (int(found.id), str(found.status), list(found.run_ids or []), False, None)
            continue
        run = runs[i][0] if i in runs else None
        if run is not None and op.create is not None and run.id != op.create.run_id:
            # Its idempotency key had started a run before: point at that one.
            tx.execute_many(
                "UPDATE deliveries SET run_ids = :run_ids WHERE id = :id",
                [{"run_ids": json_text([run.id]), "id": stored[where]}],
            )
        results[i] = (stored[where], op.status, [run.id] if run else [], True, run)
    for i, origin in repeats.items():  # the same signed body twice in this batch
        found = results[origin]
        if isinstance(found, tuple):
            results[i] = (found[0], found[1], found[2], False, None)
        else:
            results[i] = found
    return results


def _replays(
    tx: WriteTx, ops: Sequence[Deliver], todo: list[int], results: list[Any]
) -> tuple[list[int], dict[int, int]]:
    """Fill in the results of deliveries the replay guard saw before (their delivery may
    have been pruned since: then its status reads ``PRUNED``); the slots left to insert,
    and those repeating one earlier in this batch (-> that slot)."""
    digests = sorted({b for i in todo if (b := ops[i].replay) is not None})
    seen: dict[tuple[str, str], tuple[int, str, list[str]]] = {}
    for start in range(0, len(digests), ROWS_PER_INSERT):
        chunk = digests[start : start + ROWS_PER_INSERT]
        marks = ", ".join(f":b{n}" for n in range(len(chunk)))
        rows = tx.fetch_rows(
            "SELECT r.trigger_id, r.digest, r.delivery_id, d.status, d.run_ids "  # noqa: S608
            "FROM webhook_replays r LEFT JOIN deliveries d ON d.id = r.delivery_id "
            f"WHERE r.digest IN ({marks})",
            {f"b{n}": b for n, b in enumerate(chunk)},
        )
        for trigger_id, digest, delivery_id, status, run_ids in rows:
            ids = json.loads(run_ids) if isinstance(run_ids, str) else list(run_ids or [])
            found = (int(delivery_id), str(status or "PRUNED"), ids)
            seen.setdefault((trigger_id, digest), found)
    left: list[int] = []
    firsts: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for i in todo:
        op = ops[i]
        where = (op.trigger_id, op.replay or "")
        if op.replay is not None and where in seen:
            delivery_id, status, ids = seen[where]
            results[i] = (delivery_id, status, ids, False, None)
        elif op.replay is not None and where in firsts:
            repeats[i] = firsts[where]
        else:
            if op.replay is not None:
                firsts[where] = i
            left.append(i)
    return left, repeats
