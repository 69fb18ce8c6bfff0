"""Redis Streams: a stream read by one consumer group that every lockgate server joins.

An entry's ``body`` field is the message body (JSON); its other fields are the message's
headers. An entry without a ``body`` field is all headers, and its body is those fields as
a JSON object. The group is created at the queue trigger's creation time, so entries added
after the trigger was made are read and older ones are not. Entries a consumer took and never
acknowledged (it died) are claimed by another after ``claim_after`` seconds (XAUTOCLAIM).
Dead letters go to another stream, with the reason in an ``error`` field and the entry's id
in ``source_id``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from lockgate.records import QueueRecord
from lockgate.triggers.sources import Message

BODY = "body"


class RedisStreamSource:
    """One consumer of a queue trigger's stream."""

    def __init__(self, queue: QueueRecord, password: str | None, consumer: str) -> None:
        self.queue = queue
        self.consumer = consumer
        self._client = redis.Redis.from_url(
            queue.url, password=password, decode_responses=False, socket_timeout=30
        )
        self._claimed_at = 0.0

    async def open(self) -> None:
        """Create the consumer group (and the stream) unless they exist."""
        start = f"{int(self.queue.created_at * 1000)}-0"
        try:
            await self._client.xgroup_create(
                self.queue.source, self.queue.consumer_group, id=start, mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def receive(self, limit: int, wait: float) -> list[Message]:
        """Entries claimed from dead consumers first (every ``claim_after`` / 2 seconds),
        then new ones."""
        q = self.queue
        now = time.monotonic()
        if now - self._claimed_at >= q.claim_after / 2:
            self._claimed_at = now
            answer = await self._client.xautoclaim(
                q.source,
                q.consumer_group,
                self.consumer,
                min_idle_time=int(q.claim_after * 1000),
                start_id="0-0",
                count=limit,
            )
            claimed = [_message(i, f) for i, f in answer[1] if f is not None]
            if claimed:
                return claimed
        found: Any = await self._client.xreadgroup(
            q.consumer_group,
            self.consumer,
            {q.source: ">"},
            count=limit,
            block=max(1, int(wait * 1000)),
        )
        return [_message(i, f) for _, entries in found or [] for i, f in entries]

    async def ack(self, messages: list[Message]) -> None:
        """XACK them."""
        if messages:
            await self._client.xack(
                self.queue.source, self.queue.consumer_group, *[m.handle for m in messages]
            )

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Copy the entry to the dead-letter stream with ``error`` and ``source_id``, then
        acknowledge it (a crash between the two copies it twice, never loses it)."""
        fields: dict[Any, Any] = {**message.headers, "error": reason[:2000]}
        fields[BODY] = message.body
        fields["source_id"] = message.id or ""
        await self._client.xadd(self.queue.dead_letter, fields)
        await self.ack([message])

    async def close(self) -> None:
        """Close the connection."""
        await self._client.aclose()


def _message(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Message:
    ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    text = {
        k.decode(errors="replace"): v.decode(errors="replace")
        for k, v in fields.items()
        if k != BODY.encode()
    }
    body = fields.get(BODY.encode())
    if body is None:
        body = json.dumps(text).encode()
    return Message(id=ident, body=body, headers=text, handle=entry_id)
