"""Shared by the benchmarks: database set-up and the raw commit rate of that database."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from lockgate.store import open_store
from lockgate.testing import PostgresServer


def add_db_args(parser: argparse.ArgumentParser) -> None:
    """``--db sqlite|postgres`` and ``--url``."""
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--url", help="database URL; without it a temp SQLite file or a throwaway PostgreSQL"
    )


@contextlib.contextmanager
def database(db: str, url: str | None) -> Iterator[str]:
    """A database URL for the run: given, a temp SQLite file, or a fresh PostgreSQL server."""
    if url:
        yield url
        return
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    with PostgresServer(fsync=True) as server:
        yield server.create_database("bench")


def raw_commit_rate(url: str, seconds: float = 2.0, clients: int = 1) -> float:
    """Commits/s of one INSERT + UPDATE transaction, on ``clients`` connections at once."""
    store = open_store(url)
    engine = store._writer_engine if clients == 1 else store._reader_engine
    with engine.connect() as conn, conn.begin():
        conn.execute(text("DROP TABLE IF EXISTS bench_raw"))
        conn.execute(text("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, n INTEGER)"))
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(slot: int) -> None:
        with engine.connect() as conn:
            i = 0
            while time.monotonic() < stop:
                key = slot * 10_000_000 + i
                with conn.begin():
                    conn.execute(text("INSERT INTO bench_raw VALUES (:i, 0)"), {"i": key})
                    conn.execute(text("UPDATE bench_raw SET n = n + 1 WHERE id = :i"), {"i": key})
                i += 1
            counts[slot] = i

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    with engine.connect() as conn, conn.begin():
        conn.execute(text("DROP TABLE bench_raw"))
    store.close()
    return sum(counts) / elapsed


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
