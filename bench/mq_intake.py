"""Queue intake: messages per second into committed deliveries with their runs, against the
broker's own consume rate in the same run.

    python bench/mq_intake.py --broker redis --db sqlite
    python bench/mq_intake.py --broker rabbitmq --db postgres   # starts its own servers

Starts a throwaway broker (Debian's redis-server or rabbitmq-server) and database, and
publishes ``--messages`` messages before anything reads them. Then:

- ``raw_messages_per_s``: a plain consumer (redis-py / aio-pika, no lockgate) takes them in
  batches of ``--batch`` and acknowledges each batch: the broker's own ceiling here;
- ``messages_per_s``: the same number again, published to a queue trigger's source and read
  by lockgate's consumer (``Queues.run``, as ``lockgate server`` runs it): each message
  checked, its run's params rendered, its delivery and run committed (one transaction per
  batch) and then acknowledged. Timed from the start to the last delivery committed and
  every message acknowledged. No worker executes the runs (they are left PENDING), so this
  is intake alone.

One JSON line: ``broker``, ``db``, ``messages``, ``messages_per_s``, ``raw_messages_per_s``,
``ratio``, ``raw_commits_per_s`` (the database's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import aio_pika
import redis.asyncio as aioredis
from sqlalchemy import text

from common import add_db_args, database, raw_commit_rate
from lockgate import App, Pipeline, Settings, StepContext, step
from lockgate.testing import RabbitMQServer, RedisServer


@step
def noop(ctx: StepContext) -> None:
    pass


intake = Pipeline("intake", [noop])


def body(n: int) -> bytes:
    return json.dumps({"version": f"1.{n}", "service": "shop", "by": "ci"}).encode()


@contextlib.contextmanager
def broker_server(kind: str) -> Iterator[Any]:
    with RedisServer() if kind == "redis" else RabbitMQServer() as server:
        yield server


async def publish(kind: str, server: Any, name: str, n: int) -> None:
    if kind == "redis":
        client = aioredis.Redis.from_url(server.url)
        for start in range(0, n, 1000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(n, start + 1000)):
                pipe.xadd(name, {"body": body(i)})
            await pipe.execute()
        await client.aclose()
        return
    connection = await aio_pika.connect(server.url)
    channel = await connection.channel(publisher_confirms=False)
    await channel.declare_queue(name, durable=True)
    for i in range(n):
        message = aio_pika.Message(body(i), message_id=f"m{i}-{name}")
        await channel.default_exchange.publish(message, routing_key=name)
    await connection.close()


async def raw_rate(kind: str, server: Any, n: int, batch: int) -> float:
    """Consume ``n`` published messages in batches, acknowledging each batch."""
    name = f"raw-{kind}"
    if kind == "redis":
        client = aioredis.Redis.from_url(server.url)
        await client.xgroup_create(name, "raw", id="0", mkstream=True)
        await publish(kind, server, name, n)
        t0, seen = time.perf_counter(), 0
        while seen < n:
            found = await client.xreadgroup("raw", "c", {name: ">"}, count=batch, block=1000)
            ids = [entry_id for _, entries in found for entry_id, _ in entries]
            await client.xack(name, "raw", *ids)
            seen += len(ids)
        took = time.perf_counter() - t0
        await client.aclose()
        return n / took
    await publish(kind, server, name, n)
    connection = await aio_pika.connect(server.url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2 * batch)  # as lockgate sets it
    queue = await channel.declare_queue(name, durable=True)
    done = asyncio.Event()
    seen = 0
    t0 = time.perf_counter()

    async def take(message: Any) -> None:  # acknowledged a batch at a time, as lockgate does
        nonlocal seen
        seen += 1
        if seen % batch == 0 or seen == n:
            await message.ack(multiple=True)
        if seen == n:
            done.set()

    await queue.consume(take)
    await done.wait()
    took = time.perf_counter() - t0
    await connection.close()
    return n / took


def settled(kind: str, server: Any, name: str) -> bool:
    """Whether every message of ``name`` was acknowledged."""

    async def check() -> bool:
        if kind == "redis":
            client = aioredis.Redis.from_url(server.url)
            try:
                return int((await client.xpending(name, "lockgate"))["pending"]) == 0
            finally:
                await client.aclose()
        connection = await aio_pika.connect(server.url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            return queue.declaration_result.message_count == 0
        finally:
            await connection.close()

    return asyncio.run(check())


async def lockgate_rate(app: App, kind: str, server: Any, n: int, batch: int) -> float:
    name = f"lockgate-{kind}"
    url = server.url if kind == "redis" else server.address
    credentials = None if kind == "redis" else "BROKER"
    queue = app.queues.create(
        pipeline="intake",
        broker=kind,
        url=url,
        source=name,
        params={"version": "${message.body.version}", "service": "${message.body.service}"},
        batch_size=batch,
        credentials=credentials,
    )
    if kind == "redis":  # the group starts at the trigger's creation: publish after it
        time.sleep(0.01)
    await publish(kind, server, name, n)
    count = text("SELECT COUNT(*) FROM deliveries WHERE trigger_id = :t")
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(app.queues.run(stop))
    try:
        while True:
            stored = app.store.read(lambda c: c.execute(count, {"t": queue.id}).scalar_one())
            if stored >= n and await asyncio.to_thread(settled, kind, server, name):
                break
            await asyncio.sleep(0.02)
        took = time.perf_counter() - t0
    finally:
        stop.set()
        await task
    return n / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    add_db_args(parser)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="messages per batch (prefetch)")
    args = parser.parse_args()
    with broker_server(args.broker) as server, database(args.db, args.url) as url:
        secrets = {"BROKER": server.password} if args.broker == "rabbitmq" else {}
        app = App(Settings(database_url=url, secrets=secrets))
        app.migrate()
        app.register(intake)
        raw = asyncio.run(raw_rate(args.broker, server, args.messages, args.batch))
        ours = asyncio.run(lockgate_rate(app, args.broker, server, args.messages, args.batch))
        app.close()
        print(
            json.dumps(
                {
                    "broker": args.broker,
                    "db": args.db,
                    "messages": args.messages,
                    "batch": args.batch,
                    "messages_per_s": round(ours, 1),
                    "raw_messages_per_s": round(raw, 1),
                    "ratio": round(ours / raw, 3),
                    "raw_commits_per_s": round(raw_commit_rate(url), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
