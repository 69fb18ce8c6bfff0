"""RabbitMQ (AMQP 0-9-1): a durable queue that every lockgate server consumes.

A message's body is JSON; its AMQP headers are the message's headers and its
``message_id`` property its id (without one, a hash of the body identifies it). Servers are
competing consumers, each holding at most twice ``batch_size`` unacknowledged messages (the
prefetch: the next batch arrives while one commits); a server's unacknowledged messages go
back to the queue the moment its connection drops, for another server. The queue is
declared (durable) if it does not exist. A dead letter is published to the dead-letter queue
(declared durable, through the default exchange, confirmed by the broker) with the reason in
an ``x-lockgate-error`` header and the original id in ``x-lockgate-source-id``, then the
message is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity

from lockgate.records import QueueRecord
from lockgate.triggers.sources import Message


class RabbitMQSource:
    """One consumer of a queue trigger's queue."""

    def __init__(self, queue: QueueRecord, password: str | None, consumer: str) -> None:
        self.queue = queue
        self.consumer = consumer
        self._password = password
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def open(self) -> None:
        """Connect, declare the queues unless they exist, and start consuming."""
        extra: dict[str, Any] = {"password": self._password} if self._password else {}
        self._connection = await aio_pika.connect(
            self.queue.url,
            timeout=30,
            client_properties={"connection_name": self.consumer},
            **extra,
        )
        channel = await self._connection.channel()
        try:  # a queue made by others keeps its own settings
            source = await channel.declare_queue(self.queue.source, passive=True)
        except ChannelNotFoundEntity:
            channel = await self._connection.channel()  # the failed declare closed it
            source = await channel.declare_queue(self.queue.source, durable=True)
        await channel.declare_queue(self.queue.dead_letter, durable=True)
        # Room for the next batch to arrive while one commits.
        await channel.set_qos(prefetch_count=2 * self.queue.batch_size)
        await source.consume(self._inbox.put, no_ack=False, consumer_tag=self.consumer)
        self._channel = channel

    async def receive(self, limit: int, wait: float) -> list[Message]:
        """Up to ``limit`` delivered messages, waiting up to ``wait`` for the first."""
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        taken: list[AbstractIncomingMessage] = []
        with contextlib.suppress(TimeoutError):
            taken.append(await asyncio.wait_for(self._inbox.get(), wait))
        while taken and len(taken) < limit and not self._inbox.empty():
            taken.append(self._inbox.get_nowait())
        return [_message(m) for m in taken]

    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge them with one frame: the channel delivers in order and a batch is
        every message delivered before its last one not yet acknowledged, so acknowledging
        the last with ``multiple`` covers exactly the batch."""
        if messages:
            last = max(messages, key=lambda m: int(m.handle.delivery_tag))
            await last.handle.ack(multiple=True)

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Publish a copy to the dead-letter queue (confirmed), then acknowledge."""
        assert self._channel is not None
        original: AbstractIncomingMessage = message.handle
        headers = {
            **(original.headers or {}),
            "x-lockgate-error": reason[:2000],
            "x-lockgate-source-id": message.id or "",
        }
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=original.content_type,
            message_id=original.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._channel.default_exchange.publish(copy, routing_key=self.queue.dead_letter)
        await original.ack()

    async def close(self) -> None:
        """Close the connection: what was not acknowledged goes back to the queue."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


def _message(incoming: AbstractIncomingMessage) -> Message:
    headers = {str(k): _text(v) for k, v in (incoming.headers or {}).items()}
    return Message(id=incoming.message_id, body=incoming.body, headers=headers, handle=incoming)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
