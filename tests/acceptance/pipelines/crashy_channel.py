"""A channel whose stage tests the crash tests kill a worker in.

Each test appends ``deployment stage seq`` to the ledger named by LOCKGATE_LEDGER, then
sleeps LOCKGATE_SLOW_SECONDS; with LOCKGATE_FAIL_TESTS=1 the ``two`` test fails.
"""

from __future__ import annotations

import os
import time
from typing import Any

from lockgate import Channel, Deployment, PushRequest, Stage


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    pushes = [*manifest.get("pushes", []), f"{request.tenant}:{request.content['n']}"]
    return {"pushes": pushes}


def slow_test(d: Deployment) -> None:
    with open(os.environ["LOCKGATE_LEDGER"], "a") as fh:
        fh.write(f"{d.id} {d.stage} {d.seq}\n")
        fh.flush()
        os.fsync(fh.fileno())
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "0")))
    if d.stage == "two" and os.environ.get("LOCKGATE_FAIL_TESTS") == "1":
        raise AssertionError("stage two refuses this manifest")


crashy = Channel(
    "crashy",
    merge=merge,
    stages=[Stage("one", test=slow_test), Stage("two", test=slow_test), Stage("three")],
    queue_poll=0.2,
)
