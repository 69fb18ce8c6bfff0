"""Queue triggers on a real RabbitMQ node: messages start runs once, bad ones go to the
dead-letter queue, a dropped consumer's messages come back once, consumers compete."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from queue_support import PARAMS, deliveries, register, wait_for

from lockgate import App, RunStatus, Settings
from lockgate.records import QueueRecord
from lockgate.testing import RabbitMQServer
from lockgate.triggers.queues import Queues
from lockgate.triggers.sources import Message


@pytest.fixture
def settings(settings: Settings, rabbitmq_server: RabbitMQServer) -> Settings:
    """The broker's password as a named secret, as a server would have it."""
    return settings.with_(secrets={"RABBIT": rabbitmq_server.password})


@pytest.fixture
def queue_name() -> str:
    return f"deploys-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def channel(rabbitmq_server: RabbitMQServer) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq_server.url)
    yield await connection.channel()
    await connection.close()


def make_queue(app: App, tmp_path: Path, url: str, name: str, **extra: Any) -> QueueRecord:
    register(app, tmp_path)
    return app.queues.create(
        pipeline="shipped",
        broker="rabbitmq",
        url=url,
        source=name,
        params=PARAMS,
        credentials="RABBIT",
        **extra,
    )


async def publish(
    channel: aio_pika.abc.AbstractChannel, name: str, body: Any, **headers: str
) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message_id = uuid.uuid4().hex
    message = aio_pika.Message(raw, headers=dict(headers), message_id=message_id)
    await channel.default_exchange.publish(message, routing_key=name)
    return message_id


async def depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    declared = await channel.declare_queue(name, passive=True)
    return int(declared.declaration_result.message_count or 0)


@pytest.fixture
async def consuming(app: App, worker: object) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.queues.run(stop))
    yield stop
    stop.set()
    await asyncio.wait_for(task, 20)


async def declared(channel: aio_pika.abc.AbstractChannel, name: str) -> None:
    await channel.declare_queue(name, durable=True)


async def test_messages_start_runs_and_bad_ones_go_to_the_dead_letter_queue(
    app: App,
    consuming: asyncio.Event,
    channel: aio_pika.abc.AbstractChannel,
    rabbitmq_server: RabbitMQServer,
    tmp_path: Path,
    queue_name: str,
) -> None:
    queue = make_queue(
        app, tmp_path, rabbitmq_server.address, queue_name, match={"headers.env": ["prod"]}
    )
    await declared(channel, queue_name)
    good = await publish(channel, queue_name, {"version": "3.1"}, env="prod")
    not_json = await publish(channel, queue_name, b"{nope", env="prod")
    refused = await publish(channel, queue_name, {"version": 5}, env="prod")
    filtered = await publish(channel, queue_name, {"version": "1"}, env="dev")
    found = await deliveries(app, queue.id, 4)
    assert found[good].status == "DONE" and found[good].payload["headers"] == {"env": "prod"}
    run = await app.wait(found[good].run_ids[0], timeout=20)
    assert run.status == RunStatus.SUCCEEDED and run.params == {"version": "3.1"}
    for key in (not_json, refused, filtered):
        assert found[key].status == "REJECTED" and not found[key].run_ids
    assert "filtered out" in found[filtered].error
    dead = await channel.declare_queue(queue.dead_letter, passive=True)
    letters = []
    for _ in range(2):
        letter = await dead.get(timeout=5)
        await letter.ack()
        letters.append(letter)
    assert [m.headers["x-lockgate-source-id"] for m in letters] == [not_json, refused]
    assert "body is not JSON" in str(letters[0].headers["x-lockgate-error"])
    assert letters[0].body == b"{nope"
    await wait_for(lambda: asyncio.run(depth_now(rabbitmq_server, queue_name)) == 0)


async def depth_now(server: RabbitMQServer, name: str) -> int:
    connection = await aio_pika.connect(server.url)
    try:
        return await depth(await connection.channel(), name)
    finally:
        await connection.close()


async def test_a_dropped_consumers_messages_come_back_once(
    app: App,
    worker: object,
    channel: aio_pika.abc.AbstractChannel,
    rabbitmq_server: RabbitMQServer,
    tmp_path: Path,
    queue_name: str,
) -> None:
    """A consumer took two messages and its connection dropped: one never stored, one
    stored with its run. They go back to the queue; the next consumer starts the first's run
    and finds the second's delivery of before (no second run)."""
    queue = make_queue(app, tmp_path, rabbitmq_server.address, queue_name)
    await declared(channel, queue_name)
    first = await publish(channel, queue_name, {"version": "1"})
    second = await publish(channel, queue_name, {"version": "2"})
    gone = await aio_pika.connect(rabbitmq_server.url)
    taken = await (await gone.channel()).declare_queue(queue_name, passive=True)
    held = [await taken.get(timeout=5), await taken.get(timeout=5)]
    assert [m.message_id for m in held] == [first, second]
    op, _ = Queues(app.store, app.launcher).plan(queue, Message(second, held[1].body))
    [stored] = app.store.apply_batch([op])
    await gone.close()  # dropped without acknowledging: both go back to the queue
    stop = asyncio.Event()
    task = asyncio.create_task(app.queues.run(stop))
    try:
        found = await deliveries(app, queue.id, 2)
        await wait_for(lambda: asyncio.run(depth_now(rabbitmq_server, queue_name)) == 0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert found[second].run_ids == stored[2] and len(found[first].run_ids) == 1
    assert sorted(r.params["version"] for r in app.list_runs(pipeline="shipped")) == ["1", "2"]


async def test_competing_consumers_start_each_run_once(
    app: App,
    worker: object,
    channel: aio_pika.abc.AbstractChannel,
    rabbitmq_server: RabbitMQServer,
    tmp_path: Path,
    queue_name: str,
) -> None:
    queue = make_queue(app, tmp_path, rabbitmq_server.address, queue_name, batch_size=10)
    await declared(channel, queue_name)
    consumers = []
    for n in range(3):
        q = Queues(app.store, app.launcher, app.settings.secrets)
        q.consumer = f"server-{n}"
        consumers.append(q)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(q.run(stop)) for q in consumers]
    try:
        await wait_for(lambda: all(queue.id in q.reading for q in consumers))
        for i in range(150):
            await publish(channel, queue_name, {"version": f"v{i}"})
        await wait_for(lambda: len(app.deliveries.list(queue.id, limit=1000)) == 150, timeout=60)
    finally:
        stop.set()
        for task in tasks:
            await asyncio.wait_for(task, 20)
    runs = app.list_runs(pipeline="shipped", limit=1000)
    assert sorted(r.params["version"] for r in runs) == sorted(f"v{i}" for i in range(150))
    assert await depth(channel, queue_name) == 0


async def test_a_messages_traceparent_header_is_its_runs_parent(
    app: App,
    spans: InMemorySpanExporter,
    consuming: asyncio.Event,
    channel: aio_pika.abc.AbstractChannel,
    rabbitmq_server: RabbitMQServer,
    tmp_path: Path,
    queue_name: str,
) -> None:
    queue = make_queue(app, tmp_path, rabbitmq_server.address, queue_name)
    await declared(channel, queue_name)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    await publish(
        channel, queue_name, {"version": "3.0.0"}, traceparent=f"00-{caller_trace}-{caller_span}-01"
    )
    [delivery] = (await deliveries(app, queue.id, 1)).values()
    run = await app.wait(delivery.run_ids[0], timeout=20)
    assert run.status == RunStatus.SUCCEEDED
    assert run.trace_parent == caller_span
    assert run.trace_context is not None and run.trace_context.split("-")[1] == caller_trace
    batch = [s for s in spans.get_finished_spans() if s.name == f"process {queue_name}"]
    assert batch and (batch[0].attributes or {})["messaging.system"] == "rabbitmq"


async def test_poison_messages_never_abort_their_batch(
    app: App,
    consuming: asyncio.Event,
    channel: aio_pika.abc.AbstractChannel,
    rabbitmq_server: RabbitMQServer,
    tmp_path: Path,
    queue_name: str,
) -> None:
    """Threat: one message that cannot be stored (an id over the column's limit or with a
    NUL, a body with a lone surrogate, a body over the size limit) aborting its batch, so
    that the batch comes back for ever and the trigger stalls. Long and NUL ids are stored
    hashed and run; the rest are REJECTED to the dead letters; the good one still runs."""
    app.queues.planner.max_message_bytes = 4096
    queue = make_queue(app, tmp_path, rabbitmq_server.address, queue_name)
    await declared(channel, queue_name)

    async def send(raw: bytes, message_id: str) -> None:
        message = aio_pika.Message(raw, message_id=message_id)
        await channel.default_exchange.publish(message, routing_key=queue_name)

    good = json.dumps({"version": "1.0"}).encode()
    await send(good, "x" * 250)
    await send(good.replace(b"1.0", b"1.1"), "with\x00nul")
    await send(b'{"version": "\\ud800"}', "surrogate")
    await send(json.dumps({"version": "9" * 5000}).encode(), "huge")
    await send(good.replace(b"1.0", b"2.0"), "after")
    found = await deliveries(app, queue.id, 5)
    hashed = [k for k in found if k.startswith("sha256:")]
    assert len(hashed) == 2 and all(found[k].status == "DONE" for k in hashed)
    assert found["surrogate"].status == "REJECTED" and "body.version" in found["surrogate"].error
    assert found["huge"].status == "REJECTED"
    assert "over the limit of 4096" in found["huge"].error
    run = await app.wait(found["after"].run_ids[0], timeout=20)
    assert run.status == RunStatus.SUCCEEDED and run.params == {"version": "2.0"}
    dead = await channel.declare_queue(queue.dead_letter, passive=True)
    sources = []
    for _ in range(2):
        letter = await dead.get(timeout=5)
        await letter.ack()
        sources.append(letter.headers["x-lockgate-source-id"])
    assert sources == ["surrogate", "huge"]
    await wait_for(lambda: asyncio.run(depth_now(rabbitmq_server, queue_name)) == 0)
