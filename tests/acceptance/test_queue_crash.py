"""A server consuming a Redis stream, killed with SIGKILL again and again while messages
keep coming: no message is lost and none starts two runs (checked against the broker's
own record of what was published, and a ledger of the steps that ran)."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import redis
from servers import lockgate_server

from lockgate import App, Settings
from lockgate.testing import RedisServer

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")
MESSAGES = 300


def test_a_killed_consumer_loses_no_message_and_starts_no_run_twice(
    db_url: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    app = App(Settings(database_url=db_url))
    app.migrate()
    stream = f"crash-{uuid.uuid4().hex[:8]}"
    queue = app.queues.create(
        "crashy", "redis", redis_server.url, stream, batch_size=25, claim_after=1.0
    )
    ledger = tmp_path / "ledger"
    env = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEDGER": str(ledger),
        "LOCKGATE_SLOW_SECONDS": "0",
        "LOCKGATE_POLL_INTERVAL": "0.05",
    }
    broker = redis.Redis.from_url(redis_server.url)
    published: list[str] = []

    def publish() -> None:  # a producer that does not care what lockgate goes through
        for i in range(MESSAGES):
            published.append(broker.xadd(stream, {"body": f'{{"n": {i}}}'}).decode())
            time.sleep(0.01)

    producer = threading.Thread(target=publish)
    kills = 0
    try:
        producer.start()
        for _ in range(4):  # killed at a random moment: reading, committing or acking
            with lockgate_server(env, "--pipelines", PIPELINES) as (_, proc):
                time.sleep(random.uniform(0.6, 1.4))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills += 1
        producer.join()
        with lockgate_server(env, "--pipelines", PIPELINES):
            deadline = time.monotonic() + 90
            while True:
                found = app.deliveries(queue.id, limit=1000)
                runs = [app.get_run(r).run for d in found for r in d.run_ids]
                pending = int(broker.xpending(stream, "lockgate")["pending"])
                if (
                    len(found) == MESSAGES
                    and pending == 0
                    and all(r.status == "SUCCEEDED" for r in runs)
                ):
                    break
                assert time.monotonic() < deadline, (len(found), pending)
                time.sleep(0.2)
        assert kills == 4
        assert {d.key for d in found} == set(published)  # none lost, none made up
        assert all(d.status == "DONE" and len(d.run_ids) == 1 for d in found)
        assert len({r.id for r in runs}) == MESSAGES  # one run per message
        lines = [line.split() for line in ledger.read_text().splitlines()]
        started = Counter(run_id for run_id, step, _ in lines if step == "prepare")
        assert set(started) == {r.id for r in runs}  # each run ran; no other run did
    finally:
        producer.join(60)
        broker.close()
        app.close()
