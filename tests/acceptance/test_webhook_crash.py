"""A server killed with SIGKILL in the middle of a flood of webhook deliveries: nothing is
left half done, and the next server's retry routine finishes what the dead one failed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import time
import uuid
from pathlib import Path

import httpx
from servers import lockgate_server

from lockgate import App, Settings

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")
PUSH = (HERE.parent / "fixtures" / "webhooks" / "github" / "push.json").read_bytes()
SECRET = "crash-test-secret-0123456789"


def body_of(delivery_id: str) -> bytes:
    """A distinct push per delivery (the same signed body twice is a replay)."""
    return PUSH.rstrip()[:-1] + f', "lockgate_test_delivery": "{delivery_id}"}}'.encode()


async def deliver(
    url: str, trigger_id: str, ids: list[str], answered: asyncio.Event | None = None
) -> dict[str, int | None]:
    """Send each delivery once; the status answered, or None when the connection broke."""
    answers: dict[str, int | None] = {}

    async def one(http: httpx.AsyncClient, delivery_id: str) -> None:
        body = body_of(delivery_id)
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        }
        try:
            r = await http.post(f"{url}/hooks/{trigger_id}", content=body, headers=headers)
            answers[delivery_id] = r.status_code
            if answered is not None and len(answers) >= 10:
                answered.set()
        except httpx.HTTPError:
            answers[delivery_id] = None

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(one(http, d) for d in ids))
    return answers


def test_a_killed_servers_deliveries_are_finished_by_the_next(db_url: str, tmp_path: Path) -> None:
    app = App(Settings(database_url=db_url))
    app.migrate()
    trigger = app.webhooks.create(provider="github", pipeline="crashy", secret=SECRET)
    env = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEDGER": str(tmp_path / "ledger"),
        "LOCKGATE_SLOW_SECONDS": "0",
        "LOCKGATE_POLL_INTERVAL": "0.05",
    }
    sent = [str(uuid.uuid4()) for _ in range(220)]
    try:
        # The first server lacks the pipeline: its deliveries are stored FAILED, to be
        # retried; it is killed while a second wave is still coming in.
        first_env = {**env, "LOCKGATE_DELIVERY_RETRY_INTERVAL": "600"}
        with lockgate_server(first_env) as (url, first):
            answers = asyncio.run(deliver(url, trigger.id, sent[:20]))
            assert set(answers.values()) == {202}

            async def flood_and_kill() -> dict[str, int | None]:
                some = asyncio.Event()
                flood = asyncio.create_task(deliver(url, trigger.id, sent[20:], some))
                await some.wait()  # killed with deliveries answered, in flight and unsent
                first.send_signal(signal.SIGKILL)
                return await flood

            answers.update(asyncio.run(flood_and_kill()))
            first.wait(10)
        stored = {d.key: d for d in app.deliveries.list(trigger.id, limit=1000)}
        assert {d.status for d in stored.values()} <= {"FAILED"}
        assert all(answers[k] == 202 for k in stored if k in sent[:20])

        retry = {"LOCKGATE_DELIVERY_RETRY_AFTER": "0.1", "LOCKGATE_DELIVERY_RETRY_INTERVAL": "0.1"}
        with lockgate_server({**env, **retry}, "--pipelines", PIPELINES) as (url, _):
            # The provider sends again what got no answer; a delivery the dead server had
            # stored is answered as a duplicate, and the retry routine finishes it.
            lost = [d for d, status in answers.items() if status != 202]
            while lost:  # as a provider would: again after a 429's Retry-After
                again = asyncio.run(deliver(url, trigger.id, lost))
                assert set(again.values()) <= {200, 202, 429}
                lost = [d for d, status in again.items() if status == 429]
                time.sleep(1 if lost else 0)
            deadline = time.monotonic() + 60
            while True:
                found = app.deliveries.list(trigger.id, limit=1000)
                runs = [app.get_run(r).run for d in found for r in d.run_ids]
                if (
                    len(found) == 220
                    and all(d.status == "DONE" for d in found)
                    and all(r.status == "SUCCEEDED" for r in runs)
                ):
                    break
                assert time.monotonic() < deadline, sorted({d.status for d in found})
                time.sleep(0.1)
        assert {d.key for d in found} == set(sent)
        assert all(len(d.run_ids) == 1 for d in found)
        assert len({r.id for r in runs}) == 220  # one run per delivery, none twice
        assert all(d.attempts >= 2 for d in found if d.key in sent[:20])
    finally:
        app.close()
