"""Message sources: the brokers a queue trigger reads from, behind one small interface.

A source hands out messages and acknowledges them only when told to, after their
deliveries and runs are committed: a consumer killed at any point loses no message (the
broker gives it again) and starts no run twice (its delivery is stored once per key).
Adding a broker is one module with a :class:`Source`; :func:`open_source` picks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lockgate.records import QueueRecord

#: The brokers there are sources for, with the package each needs (``lockgate[mq]``).
BROKERS = {"redis": "redis", "rabbitmq": "aio_pika"}


@dataclass(frozen=True)
class Message:
    """One message as the broker gave it."""

    #: The broker's id for it (a Redis entry id), or ``None`` if it has none: then a hash
    #: of the body identifies it.
    id: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: What the source needs to acknowledge it.
    handle: Any = None


class Source(Protocol):
    """Where a queue trigger's messages come from."""

    async def open(self) -> None:
        """Connect (and create what the broker needs to hand out messages, once)."""

    async def receive(self, limit: int, wait: float) -> list[Message]:
        """Up to ``limit`` messages; waits up to ``wait`` seconds for the first. Messages
        given before to a consumer that died come again here, after the broker's timeout."""

    async def ack(self, messages: list[Message]) -> None:
        """Done with ``messages``: the broker will not give them again."""

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Set ``message`` aside with ``reason`` (the broker's dead-letter place) and
        acknowledge it."""

    async def close(self) -> None:
        """Disconnect."""


def open_source(queue: QueueRecord, password: str | None, consumer: str) -> Source:
    """The source of ``queue``, as the consumer named ``consumer``."""
    if queue.broker == "redis":
        from lockgate.triggers.sources.redis_streams import RedisStreamSource

        return RedisStreamSource(queue, password, consumer)
    if queue.broker == "rabbitmq":
        from lockgate.triggers.sources.rabbitmq import RabbitMQSource

        return RabbitMQSource(queue, password, consumer)
    raise ValueError(f"no source for broker {queue.broker!r} (one of: {', '.join(BROKERS)})")
