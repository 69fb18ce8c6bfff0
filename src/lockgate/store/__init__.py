"""Storage: tables, the Store, its dialects, and migrations."""

from __future__ import annotations

import importlib.util

from lockgate.errors import SettingsError, StoreError
from lockgate.store.base import Store


def open_store(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    create: bool = True,
    stuck_after: float = 30.0,
) -> Store:
    """The store for ``url``: ``sqlite:///path`` or ``postgresql://...``. With ``create``
    false a SQLite file that does not exist is an error (:class:`DatabaseMissing`)
    instead of a new empty database. On PostgreSQL a connection silent for ``stuck_after``
    seconds inside a transaction, or with data unacknowledged, is given up (the lease time:
    locks must not outlive the leases they guard)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        from lockgate.store.sqlite import SqliteStore

        return SqliteStore(url, synchronous=sqlite_synchronous, create=create)
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None:
            raise SettingsError(
                "a postgresql:// database needs the PostgreSQL driver: "
                "pip install 'lockgate[postgres]'"
            )
        from lockgate.store.postgres import PostgresStore

        return PostgresStore(url, stuck_after=stuck_after)
    raise StoreError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


__all__ = ["Store", "open_store"]
