"""Apply the Alembic migrations; on PostgreSQL under an advisory lock."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from lockgate.store.base import Store

#: Arbitrary, fixed key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK = 7_120_342_001


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the database up to ``revision``; safe to run from many processes at once."""
    cfg = _config()
    with store._writer_engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if store.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()


def current(store: Store) -> str | None:
    """The revision the database is at, or ``None`` before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    with store._reader_engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        return str(rev) if rev is not None else None
