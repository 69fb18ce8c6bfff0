"""A server consuming a queue, killed with SIGKILL again and again while messages keep
coming, on a real Redis server and a real RabbitMQ node: no message is lost and none starts
two runs (checked against what the producer published, and a ledger of the steps run)."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
import redis
from servers import lockgate_server

from lockgate import App, Settings
from lockgate.testing import RabbitMQServer, RedisServer

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")
MESSAGES = 300
T = TypeVar("T")


class RedisProducer:
    def __init__(self, server: RedisServer, stream: str) -> None:
        self.url, self.stream = server.url, stream
        self.client = redis.Redis.from_url(server.url)

    def publish(self, n: int) -> str:
        return self.client.xadd(self.stream, {"body": f'{{"n": {n}}}'}).decode()

    def settled(self) -> bool:
        return int(self.client.xpending(self.stream, "lockgate")["pending"]) == 0

    def close(self) -> None:
        self.client.close()


class RabbitProducer:
    """Publishes from an event loop of its own (the test is synchronous)."""

    def __init__(self, server: RabbitMQServer, name: str) -> None:
        self.server, self.name = server, name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connection, self.channel = self.call(self._open())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _open(self) -> tuple[Any, Any]:
        connection = await aio_pika.connect(self.server.url)
        channel = await connection.channel()
        await channel.declare_queue(self.name, durable=True)
        return connection, channel

    async def _publish(self, n: int) -> str:
        message_id = uuid.uuid4().hex
        message = aio_pika.Message(f'{{"n": {n}}}'.encode(), message_id=message_id)
        await self.channel.default_exchange.publish(message, routing_key=self.name)
        return message_id

    async def _waiting(self) -> int:
        found = await self.channel.declare_queue(self.name, passive=True)
        return int(found.declaration_result.message_count or 0)

    def publish(self, n: int) -> str:
        return self.call(self._publish(n))

    def settled(self) -> bool:  # nothing waiting (unacknowledged ones come back on a stop)
        return self.call(self._waiting()) == 0

    def close(self) -> None:
        self.call(self.connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_killed_consumer_loses_no_message_and_starts_no_run_twice(
    broker: str, db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = App(Settings(database_url=db_url))
    app.migrate()
    name = f"crash-{uuid.uuid4().hex[:8]}"
    env = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEDGER": str(tmp_path / "ledger"),
        "LOCKGATE_SLOW_SECONDS": "0",
        "LOCKGATE_POLL_INTERVAL": "0.05",
    }
    producer: RedisProducer | RabbitProducer
    if broker == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        producer = RedisProducer(server, name)
        url, credentials = server.url, None
    else:
        rabbit: RabbitMQServer = request.getfixturevalue("rabbitmq_server")
        producer = RabbitProducer(rabbit, name)
        url, credentials = rabbit.address, "RABBIT"
        env["LOCKGATE_SECRET_RABBIT"] = rabbit.password
    queue = app.queues.create(
        pipeline="crashy",
        broker=broker,
        url=url,
        source=name,
        batch_size=25,
        claim_after=1.0,
        credentials=credentials,
    )
    published: list[str] = []

    def publish() -> None:  # a producer that does not care what lockgate goes through
        for i in range(MESSAGES):
            published.append(producer.publish(i))
            time.sleep(0.01)

    def finished() -> Callable[[], bool]:
        def check() -> bool:
            found = app.deliveries.list(queue.id, limit=1000)
            runs = [app.get_run(r).run for d in found for r in d.run_ids]
            return len(found) == MESSAGES and all(r.status == "SUCCEEDED" for r in runs)

        return check

    sending = threading.Thread(target=publish)
    try:
        sending.start()
        for _ in range(4):  # killed at a random moment: reading, committing or acking
            with lockgate_server(env, "--pipelines", PIPELINES) as (_, proc):
                time.sleep(random.uniform(0.6, 1.4))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        sending.join()
        with lockgate_server(env, "--pipelines", PIPELINES):
            deadline = time.monotonic() + 90
            while not (finished()() and producer.settled()):
                assert time.monotonic() < deadline, len(app.deliveries.list(queue.id, limit=1000))
                time.sleep(0.2)
        assert producer.settled()  # after a clean stop too: nothing left unacknowledged
        found = app.deliveries.list(queue.id, limit=1000)
        runs = [app.get_run(r).run for d in found for r in d.run_ids]
        assert {d.key for d in found} == set(published)  # none lost, none made up
        assert all(d.status == "DONE" and len(d.run_ids) == 1 for d in found)
        assert len({r.id for r in runs}) == MESSAGES  # one run per message
        lines = [line.split() for line in (tmp_path / "ledger").read_text().splitlines()]
        started = Counter(run_id for run_id, step, _ in lines if step == "prepare")
        assert set(started) == {r.id for r in runs}  # each run ran; no other run did
    finally:
        sending.join(60)
        producer.close()
        app.close()
