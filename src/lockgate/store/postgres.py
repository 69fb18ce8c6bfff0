"""PostgreSQL through psycopg 3: SKIP LOCKED claims, LISTEN/NOTIFY wake-up hints."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Table, create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from lockgate.core.text import read_json
from lockgate.errors import StoreError
from lockgate.store.base import Store

CHANNEL = "lockgate_work"
_PLACEHOLDER = re.compile(r":(\w+)")


def normalise_url(url: str) -> str:
    """``postgresql://`` URLs use the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: Server shutting down (admin, crash) or not accepting connections yet; a session ended
#: for idling in a transaction (the client was stuck).
_GOING_AWAY = {"57P01", "57P02", "57P03", "25P03"}


class PostgresStore(Store):
    """Scale-out: many workers on many machines share one PostgreSQL database."""

    dialect = "postgresql"
    skip_locked = True
    concurrent_writers = True

    def __init__(self, url: str, *, stuck_after: float = 30.0) -> None:
        self._stuck_ms = max(1000, int(stuck_after * 1000))
        super().__init__(normalise_url(url))
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        self._dsn = (
            make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        #: Per event loop: one async connection for hot reads, and its lock.
        self._async: dict[
            asyncio.AbstractEventLoop, tuple[asyncio.Lock, list[psycopg.AsyncConnection[Any]]]
        ] = {}

    def _make_engines(self, url: str) -> tuple[Engine, Engine]:
        # A worker cut off mid-transaction must not keep its row locks (and the runs they
        # cover) much past its leases: the server ends a session idle in a transaction that
        # long, probes a silent client (a statement half sent when the link went down leaves
        # the session "active", waiting to read) with TCP keepalives, and gives up on data
        # the client has not acknowledged for as long; so does the client, both ways.
        idle, every = max(1, self._stuck_ms // 3000), max(1, self._stuck_ms // 6000)
        server = (
            f"-c idle_in_transaction_session_timeout={self._stuck_ms} "
            f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={every} "
            f"-c tcp_keepalives_count=3 -c tcp_user_timeout={self._stuck_ms}"
        )
        args = {
            "options": server,
            "tcp_user_timeout": self._stuck_ms,
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": every,
            "keepalives_count": 3,
        }
        writer = create_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args=args,
            json_deserializer=read_json,
        )
        # Not pinged on checkout: Store.read tries once more after a dropped connection.
        reader = create_engine(
            url, pool_size=5, max_overflow=10, connect_args=args, json_deserializer=read_json
        )
        return writer, reader

    def insert(self, table: Table) -> Any:
        """PostgreSQL's INSERT with ON CONFLICT support."""
        return pg_insert(table)

    def driver_sql(self, sql: str) -> str:
        """psycopg's ``%(name)s`` placeholders."""
        return _PLACEHOLDER.sub(r"%(\1)s", sql)

    def _unavailable(self, exc: SQLAlchemyError) -> bool:
        """A dropped or refused connection, or a server shutting down or starting up."""
        if super()._unavailable(exc):
            return True
        orig = getattr(exc, "orig", None)
        if isinstance(orig, psycopg.InterfaceError):
            return True  # the connection is closed
        if isinstance(orig, psycopg.OperationalError):
            state = orig.sqlstate
            return state is None or state.startswith("08") or state in _GOING_AWAY
        return False

    @contextmanager
    def _lazy_commits(self, conn: Connection) -> Iterator[None]:
        """This transaction commits without waiting for its WAL flush (PostgreSQL's
        asynchronous commit; later synchronous commits flush it with them)."""
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        yield

    def _notify_peers(self, conn: Connection) -> None:
        conn.execute(text(f"NOTIFY {CHANNEL}"))

    def listen(self, on_notify: Callable[[], None]) -> None:
        """Call ``on_notify`` (from a thread) whenever any process signals new work."""
        if self._listener is not None:
            return
        dsn = self._dsn

        def loop() -> None:
            while not self._stop_listening.is_set():
                try:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute(f"LISTEN {CHANNEL}")
                        while not self._stop_listening.is_set():
                            for _ in conn.notifies(timeout=0.5, stop_after=1):
                                on_notify()
                except psycopg.Error:
                    # The poll fallback covers the gap; try again shortly.
                    self._stop_listening.wait(1.0)

        self._listener = threading.Thread(target=loop, name="lockgate-listen", daemon=True)
        self._listener.start()

    async def fetch_one_async(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a read on an asynchronous connection of this event loop: the
        loop goes on serving while PostgreSQL answers, with no hop to a thread."""
        loop = asyncio.get_running_loop()
        held = self._async.get(loop)
        if held is None:
            held = self._async[loop] = (asyncio.Lock(), [])
        lock, conns = held
        async with lock:
            for attempt in (1, 2):
                if not conns or conns[0].closed:
                    conns[:] = [await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)]
                try:
                    cursor = await conns[0].execute(self.driver_sql(sql).encode(), params)
                    return await cursor.fetchone()
                except psycopg.OperationalError as exc:
                    await conns[0].close()
                    if attempt == 2:
                        raise StoreError(f"database read failed: {exc}") from exc
        return None  # not reached

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._stop_listening.set()
        if self._listener is not None:
            self._listener.join(timeout=2)
        super().close()
