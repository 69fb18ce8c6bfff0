"""Waiting on a condition with a deadline (never on the clock alone), and a free port."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(
    check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.02
) -> Any:
    """``check()``'s first truthy answer, asked every ``every`` seconds; an
    :class:`AssertionError` naming ``what`` after ``timeout``. Tests wait on conditions with
    this, never on the clock."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


async def eventually_async(
    check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.02
) -> Any:
    """:func:`eventually` for a test on an event loop: the loop runs between the checks
    (a worker on it goes on working); ``check`` may be a coroutine function (an HTTP
    call)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)
