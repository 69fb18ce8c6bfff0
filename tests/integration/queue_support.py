"""What the queue trigger tests share, whatever the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate import App
from lockgate.records import DeliveryRecord
from lockgate.specs import load_file
from lockgate.testing import eventually_async

PIPELINE = """
name: shipped
params:
  version: {type: string, required: true}
steps:
  - name: announce
    kind: shell
    argv: [echo, "shipping ${version}"]
"""
PARAMS = {"version": "${message.body.version}"}


def register(app: App, tmp_path: Path) -> None:
    path = tmp_path / "shipped.yaml"
    path.write_text(PIPELINE)
    app.register(load_file(path))


async def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    """``check()``'s first truthy answer, asked in a thread (a check may run a loop of its
    own); see :func:`lockgate.testing.eventually_async`."""
    asked = lambda: asyncio.to_thread(check)  # noqa: E731
    return await eventually_async(asked, "the queue's deliveries", timeout, every=0.05)


async def deliveries(app: App, queue_id: str, count: int) -> dict[str, DeliveryRecord]:
    """The queue's deliveries by key, once there are ``count``."""
    found = await wait_for(lambda: len(app.deliveries.list(queue_id, limit=1000)) >= count)
    assert found
    return {d.key: d for d in app.deliveries.list(queue_id, limit=1000)}
