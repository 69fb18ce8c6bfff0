"""Shared by the benchmarks: database set-up and the raw commit rate of that database."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

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
    """Commits/s of one INSERT + UPDATE transaction straight on the driver (no lockgate, no
    SQLAlchemy), on ``clients`` connections at once: the ceiling lockgate is measured against.

    SQLite uses the same settings as lockgate: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database

        def connect() -> Any:
            conn = sqlite3.connect(parsed.database, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn

        begin = "BEGIN IMMEDIATE"
        param = "?"
    else:
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

        def connect() -> Any:
            return psycopg.connect(dsn, autocommit=True)

        begin = "BEGIN"
        param = "%s"
    setup = connect()
    setup.execute("DROP TABLE IF EXISTS bench_raw")
    setup.execute("CREATE TABLE bench_raw (id BIGINT PRIMARY KEY, n INTEGER)")
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(slot: int) -> None:
        conn = connect()
        i = 0
        while time.monotonic() < stop:
            key = slot * 10_000_000 + i
            conn.execute(begin)
            conn.execute(f"INSERT INTO bench_raw VALUES ({param}, 0)", (key,))
            conn.execute(f"UPDATE bench_raw SET n = n + 1 WHERE id = {param}", (key,))
            conn.execute("COMMIT")
            i += 1
        counts[slot] = i
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    setup.execute("DROP TABLE bench_raw")
    setup.close()
    return sum(counts) / elapsed


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
