"""Background work on a period: a pass every so often until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog


async def every(stop: asyncio.Event, interval: float, work: Callable[[], Any], what: str) -> None:
    """Run ``work`` in a thread every ``interval`` seconds until ``stop`` is set; a failed
    pass is logged and the next one comes on time (a server's background loop)."""
    log = structlog.get_logger("lockgate.periodic")
    while not stop.is_set():
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception(f"{what} failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
