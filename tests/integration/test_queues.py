"""Queue triggers on a real Redis server: messages start runs once, bad ones are set aside
in the dead-letter stream, a dead consumer's messages are taken over, consumers compete."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from queue_support import PARAMS, deliveries, register, wait_for

from lockgate import App, ParamsError, RunStatus, Settings
from lockgate.records import QueueRecord
from lockgate.testing import RedisServer
from lockgate.triggers.queues import Queues
from lockgate.triggers.sources import Message


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def stream() -> str:
    return f"deploys-{uuid.uuid4().hex[:8]}"


def make_queue(app: App, tmp_path: Path, url: str, stream: str, **extra: Any) -> QueueRecord:
    register(app, tmp_path)
    return app.queues.create(
        pipeline="shipped", broker="redis", url=url, source=stream, params=PARAMS, **extra
    )


@pytest.fixture
async def consuming(app: App, worker: object) -> AsyncIterator[asyncio.Event]:
    """The App's queue consumers running, as `lockgate server` runs them."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.queues.run(stop))
    yield stop
    stop.set()
    await asyncio.wait_for(task, 20)


def publish(broker: redis.Redis, stream: str, body: Any, **headers: str) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return broker.xadd(stream, {"body": raw, **headers}).decode()


def pending(broker: redis.Redis, stream: str) -> int:
    return int(broker.xpending(stream, "lockgate")["pending"])


async def test_a_message_starts_a_run_and_is_acknowledged_after(
    app: App,
    consuming: asyncio.Event,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    queue = make_queue(app, tmp_path, redis_server.url, stream)
    entry = publish(broker, stream, {"version": "1.4.2"}, source="ci")
    [delivery] = await wait_for(lambda: app.deliveries.list(queue.id))
    assert delivery.source == "queue" and delivery.key == entry
    assert delivery.status == "DONE" and delivery.payload["headers"] == {"source": "ci"}
    run = await app.wait(delivery.run_ids[0], timeout=20)
    assert run.status == RunStatus.SUCCEEDED
    assert run.params == {"version": "1.4.2"} and run.requested_by == f"redis:{stream}"
    assert app.get_run(run.id).steps[0].output["stdout"] == "shipping 1.4.2"
    await wait_for(lambda: pending(broker, stream) == 0)


async def test_bad_messages_go_to_the_dead_letter_stream_and_never_block(
    app: App,
    consuming: asyncio.Event,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """Not JSON, params refused, a template that does not render: REJECTED with the reason
    and copied to the dead-letter stream; filtered out: REJECTED and acknowledged only; the
    good message after them still starts its run."""
    queue = make_queue(
        app, tmp_path, redis_server.url, stream, match={"headers.env": ["prod", "stage*"]}
    )
    not_json = publish(broker, stream, b"{not json", env="prod")
    refused = publish(broker, stream, {"version": 7}, env="prod")
    unmapped = publish(broker, stream, {"other": 1}, env="prod")
    filtered = publish(broker, stream, {"version": "1"}, env="dev")
    good = publish(broker, stream, {"version": "2.0"}, env="stage-eu")
    found = await deliveries(app, queue.id, 5)
    for key in (not_json, refused, unmapped, filtered):
        assert found[key].status == "REJECTED" and not found[key].run_ids, key
    assert "body is not JSON" in found[not_json].error
    assert "version" in found[refused].error and "string" in found[refused].error
    assert "filtered out: headers.env is 'dev'" in found[filtered].error
    assert found[good].status == "DONE"
    assert (await app.wait(found[good].run_ids[0], timeout=20)).status == RunStatus.SUCCEEDED
    dead = broker.xrange(queue.dead_letter)
    assert [e[1][b"source_id"].decode() for e in dead] == [not_json, refused, unmapped]
    assert b"body is not JSON" in dead[0][1][b"error"] and dead[0][1][b"body"] == b"{not json"
    await wait_for(lambda: pending(broker, stream) == 0)


async def test_a_dead_consumers_messages_are_taken_over_once(
    app: App,
    worker: object,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """A consumer that took two messages and died: one never stored, one stored with its
    run but not acknowledged. After claim_after, another consumer takes both: the first
    starts its run, the second is its delivery of before (no second run)."""
    queue = make_queue(app, tmp_path, redis_server.url, stream, claim_after=1.0)
    gone = Queues(app.store, app.launcher)
    gone.consumer = "died"
    broker.xgroup_create(stream, "lockgate", id="0", mkstream=True)
    first = publish(broker, stream, {"version": "1"})
    second = publish(broker, stream, {"version": "2"})
    taken = broker.xreadgroup("lockgate", "died", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 2
    op, _ = gone.plan(queue, Message(second, json.dumps({"version": "2"}).encode()))
    [stored] = app.store.apply_batch([op])  # committed; then the consumer died, no ack
    stop = asyncio.Event()
    task = asyncio.create_task(app.queues.run(stop))
    try:
        found = await deliveries(app, queue.id, 2)
        await wait_for(lambda: pending(broker, stream) == 0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert found[second].run_ids == stored[2] and len(found[first].run_ids) == 1
    runs = app.list_runs(pipeline="shipped")
    assert sorted(r.params["version"] for r in runs) == ["1", "2"]


async def test_competing_consumers_start_each_run_once(
    app: App,
    worker: object,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """Three consumers (as three servers) on one stream, 150 messages: 150 runs."""
    queue = make_queue(app, tmp_path, redis_server.url, stream, batch_size=20)
    consumers = []
    for n in range(3):
        q = Queues(app.store, app.launcher)
        q.consumer = f"server-{n}"
        consumers.append(q)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(q.run(stop)) for q in consumers]
    try:
        await wait_for(lambda: all(queue.id in q.reading for q in consumers))
        for i in range(150):
            publish(broker, stream, {"version": f"v{i}"})
        await wait_for(lambda: len(app.deliveries.list(queue.id, limit=1000)) == 150, timeout=60)
        await wait_for(lambda: pending(broker, stream) == 0)
    finally:
        stop.set()
        for task in tasks:
            await asyncio.wait_for(task, 20)
    groups = broker.xinfo_consumers(stream, "lockgate")
    assert len(groups) >= 2  # the work was shared
    runs = app.list_runs(pipeline="shipped", limit=1000)
    assert sorted(r.params["version"] for r in runs) == sorted(f"v{i}" for i in range(150))


def test_queue_settings_are_checked_with_every_problem_listed(app: App) -> None:
    with pytest.raises(ParamsError) as info:
        app.queues.create(
            pipeline="shipped",
            broker="redis",
            url="http://user:pw@host/",
            source="",
            batch_size=0,
            claim_after=0.1,
            match={"payload.x": ["a"], "body.y": "b"},
            credentials="no such!",
        )
    assert info.value.problems == [
        "url: a redis:// or rediss:// URL",
        "url: no password in the URL: name a secret holding it in credentials instead",
        "source: 1 to 200 characters, on one line",
        "batch_size: 1 to 1000",
        "claim_after: at least 1 second",
        "match: 'payload.x' starts with body., headers. or id",
        "match: 'body.y' maps to a list of globs",
        "credentials: the name of a configured secret (letters, digits, _)",
    ]
    with pytest.raises(ParamsError, match="broker: one of redis"):
        app.queues.create(pipeline="shipped", broker="kafka", url="kafka://x", source="s")
    # Threat: a broker password in the query, which passed the no-password rule and which
    # viewers read.
    with pytest.raises(ParamsError) as info:
        app.queues.create(
            pipeline="shipped",
            broker="redis",
            url="redis://host/0?password=hunter22&db=1",
            source="s",
        )
    assert info.value.problems == [
        "url: no credentials in the query (password): name a secret holding the password "
        "in credentials instead"
    ]


def test_views_hide_credentials_in_urls() -> None:
    """Whatever got stored before the rule, views show no credential of a URL."""
    from lockgate.settings import redacted

    assert redacted("redis://host/0?password=p4ss&db=1") == "redis://host/0?password=***&db=1"
    assert (
        redacted("amqp://u:pw@host/?Auth_Token=t&x=1#f")
        == "amqp://u:***@host/?Auth_Token=***&x=1#f"
    )
    assert redacted("https://ghp_x@h/r.git", user_is_secret=True) == "https://***@h/r.git"


async def test_a_changed_queue_is_followed_by_its_running_consumer(
    app: App,
    consuming: asyncio.Event,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """update() changes what is given, checks it like create() and is audited; the
    consumer reads the new stream within seconds. A paused queue reads nothing."""
    queue = make_queue(app, tmp_path, redis_server.url, stream)
    with pytest.raises(ParamsError, match="batch_size: 1 to 1000"):
        app.queues.update(queue.id, batch_size=0)
    other = f"{stream}-2"
    changed = app.acting("ops").queues.update(
        queue.id, source=other, match={"headers.env": ["prod"]}
    )
    assert changed.source == other and changed.dead_letter == queue.dead_letter
    assert [a.action for a in app.audit_log() if a.actor == "ops"] == ["queue.update"]
    await wait_for(lambda: app.queues.reading.get(queue.id) == other)  # restarted there
    entry = publish(broker, other, {"version": "9"}, env="prod")
    [delivery] = await wait_for(lambda: app.deliveries.list(queue.id))
    assert delivery.key == entry and delivery.status == "DONE"
    app.queues.pause(queue.id)
    await wait_for(lambda: queue.id not in app.queues.reading)  # its consumer stopped
    unread = publish(broker, other, {"version": "10"}, env="prod")
    # Nothing reads the stream now: the message stays there, never handed to the group.
    [group] = broker.xinfo_groups(other)
    assert group["last-delivered-id"].decode() == entry != unread
    assert len(app.deliveries.list(queue.id)) == 1


async def test_a_queue_delivery_can_be_redelivered(
    app: App,
    consuming: asyncio.Event,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """A message refused for its params is processed again from its stored body once the
    trigger is fixed: a new run, the delivery DONE, the redelivery audited."""
    queue = make_queue(app, tmp_path, redis_server.url, stream)
    app.queues.update(queue.id, params={"version": "${message.body.tag}"})
    await asyncio.sleep(3)  # the consumer follows the change
    entry = publish(broker, stream, {"tag": 7})  # a number where a string is wanted
    found = await deliveries(app, queue.id, 1)
    assert found[entry].status == "REJECTED" and not found[entry].run_ids
    app.queues.update(queue.id, params={"version": "v${message.body.tag}"})
    outcome = app.acting("ops").deliveries.redeliver(found[entry].id)
    assert outcome["status"] == "DONE" and len(outcome["run_ids"]) == 1
    run = await app.wait(outcome["run_ids"][0], timeout=20)
    assert run.status == RunStatus.SUCCEEDED and run.params == {"version": "v7"}
    again = app.deliveries.delivery(found[entry].id)
    assert again.status == "DONE" and again.attempts == 2 and again.run_ids == [run.id]
    assert "delivery.redeliver" in [a.action for a in app.audit_log() if a.actor == "ops"]


def test_queue_deliveries_follow_the_delivery_retention(settings: Settings, tmp_path: Path) -> None:
    """Retention keeps the newest deliveries of each trigger, queue triggers included."""
    app = App(settings.with_(delivery_retention_count=2))
    try:
        register(app, tmp_path)
        queue = app.queues.create(
            pipeline="shipped",
            broker="redis",
            url="redis://127.0.0.1:1/0",
            source="s",
            params=PARAMS,
        )
        planner = Queues(app.store, app.launcher)
        ops = [
            planner.plan(queue, Message(f"{n}-0", json.dumps({"version": str(n)}).encode()))[0]
            for n in range(5)
        ]
        app.store.apply_batch(ops)
        assert len(app.deliveries.list(queue.id)) == 5
        assert app.deliveries.prune() == 3
        assert [d.key for d in app.deliveries.list(queue.id)] == ["4-0", "3-0"]
    finally:
        app.close()


async def test_poison_messages_never_abort_their_batch(
    app: App,
    consuming: asyncio.Event,
    broker: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    stream: str,
) -> None:
    """Threat: one message that cannot be stored (a lone surrogate or a NUL in its body or
    a field, a body over the size limit) aborting its batch and stalling the trigger: each
    is REJECTED to the dead-letter stream with its reason; the good one still runs."""
    app.queues.planner.max_message_bytes = 4096
    queue = make_queue(app, tmp_path, redis_server.url, stream)
    surrogate = publish(broker, stream, b'{"version": "\\ud800"}')
    nul = publish(broker, stream, {"version": "1"}, env="a\x00b")
    huge = publish(broker, stream, {"version": "9" * 5000})
    good = publish(broker, stream, {"version": "2.0"})
    found = await deliveries(app, queue.id, 4)
    assert found[surrogate].status == "REJECTED" and "body.version" in found[surrogate].error
    assert found[nul].status == "REJECTED" and "headers.env" in found[nul].error
    assert found[huge].status == "REJECTED" and "over the limit" in found[huge].error
    assert (await app.wait(found[good].run_ids[0], timeout=20)).status == RunStatus.SUCCEEDED
    dead = broker.xrange(queue.dead_letter)
    assert [e[1][b"source_id"].decode() for e in dead] == [surrogate, nul, huge]
    await wait_for(lambda: pending(broker, stream) == 0)
