"""Helpers for tests and benchmarks: waiting on a condition, throwaway PostgreSQL, Redis and
RabbitMQ servers, and an OTLP trace receiver, on loopback.

Used by lockgate's own test suite and ``bench/`` scripts, and shipped so that projects
built on lockgate can test against a real database the same way.
"""

from lockgate.testing.servers import PG_BIN, PostgresServer, RabbitMQServer, RedisServer
from lockgate.testing.traces import TraceReceiver
from lockgate.testing.waiting import eventually, eventually_async, free_port

__all__ = [
    "PG_BIN",
    "PostgresServer",
    "RabbitMQServer",
    "RedisServer",
    "TraceReceiver",
    "eventually",
    "eventually_async",
    "free_port",
]
