"""Fixtures: every integration test runs on real SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lockgate import App, Settings
from lockgate.observability import tracing
from lockgate.observability.tracing import Tracer
from lockgate.store import open_store
from lockgate.store.migrate import upgrade
from lockgate.testing import PostgresServer, RabbitMQServer, RedisServer

DATABASES = os.environ.get("LOCKGATE_TEST_DATABASES", "sqlite,postgres").split(",")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session, with a migrated template DB."""
    server = PostgresServer(fsync=False).start()
    try:
        url = server.create_database("lockgate_template")
        store = open_store(url)
        upgrade(store)
        store.close()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway Redis server for the session (Debian's redis-server)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """One throwaway RabbitMQ node for the session (Debian's rabbitmq-server)."""
    with RabbitMQServer() as server:
        yield server


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL clone of the template."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lockgate.db'}"
        store = open_store(url)
        upgrade(store)
        store.close()
        return url
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(template="lockgate_template")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings tuned for fast tests: short polls and leases."""
    return Settings(
        database_url=db_url,
        workspace_dir=tmp_path / "work",
        poll_interval=0.02,
        cancel_poll_interval=0.02,
        lease_seconds=3.0,
        shutdown_grace=2.0,
    )


@pytest.fixture
def tracer(request: pytest.FixtureRequest) -> Tracer:
    """The App's tracing: off, unless the test asks for ``spans`` (then into them)."""
    if "spans" not in request.fixturenames:
        return tracing.OFF
    provider, _ = request.getfixturevalue("traced")
    return tracing.for_provider(provider)


@pytest.fixture
def app(settings: Settings, tracer: Tracer) -> Iterator[App]:
    """An App on the test database (tracing into ``spans`` when the test asks for them)."""
    application = App(settings, tracer=tracer)
    yield application
    application.close()


@pytest.fixture
async def worker(app: App) -> AsyncIterator[object]:
    """A started worker for ``app`` (register pipelines before using it)."""
    w = app.worker()
    await w.start()
    yield w
    await w.stop()
