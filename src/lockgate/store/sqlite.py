"""SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` writes, one writer connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from lockgate.core.text import read_json
from lockgate.errors import DatabaseMissing, StoreError
from lockgate.store.base import Store

_SYNC_LEVELS = {"OFF", "NORMAL", "FULL", "EXTRA"}


class SqliteStore(Store):
    """The embedded default: one file, nothing to set up."""

    dialect = "sqlite"
    local_reads = True

    def __init__(
        self,
        url: str,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        create: bool = True,
    ) -> None:
        database = make_url(url).database
        if not create and database not in (None, "", ":memory:"):
            path = Path(database).expanduser()
            if not path.exists():
                raise DatabaseMissing(
                    f"no lockgate database at {path.resolve()}: start `lockgate server` (or run "
                    "`lockgate db upgrade`) there, or point --db / LOCKGATE_DATABASE_URL at yours"
                )
        level = synchronous.upper()
        if level not in _SYNC_LEVELS:
            raise StoreError(f"sqlite synchronous must be one of {sorted(_SYNC_LEVELS)}")
        self._synchronous = level
        self._busy_timeout_ms = busy_timeout_ms
        super().__init__(url)

    def _make_engines(self, url: str) -> tuple[Engine, Engine]:
        parsed = make_url(url)
        if parsed.database in (None, "", ":memory:"):
            raise StoreError("lockgate needs a SQLite file, not an in-memory database")
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Owner-only from the start; SQLite gives its WAL and shm files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        args = {"check_same_thread": False, "timeout": self._busy_timeout_ms / 1000}
        writer = create_engine(
            url, connect_args=args, pool_size=1, max_overflow=0, json_deserializer=read_json
        )
        reader = create_engine(
            url, connect_args=args, pool_size=8, max_overflow=8, json_deserializer=read_json
        )
        self._configure(writer, "BEGIN IMMEDIATE")
        self._configure(reader, "BEGIN")
        return writer, reader

    def _configure(self, engine: Engine, begin: str) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN IMMEDIATE is ours to send.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={self._synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    def insert(self, table: Table) -> Any:
        """SQLite's INSERT with ON CONFLICT support."""
        return sqlite_insert(table)

    @contextmanager
    def _lazy_commits(self, conn: Connection) -> Iterator[None]:
        """``synchronous=NORMAL`` for the block (outside any transaction): in WAL mode a
        commit then skips its fsync, and the engine's next FULL commit syncs it too."""
        if self._synchronous not in ("FULL", "EXTRA"):
            yield
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            raw.execute(f"PRAGMA synchronous={self._synchronous}")
