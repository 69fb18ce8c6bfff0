"""The background loops of ``lockgate server``, listed in one place.

Each runs until its ``stop`` event is set. Several servers on one database may run them all:
each schedule tick, new commit, queue message and webhook retry still starts its run once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lockgate.app import App

#: A loop: it runs until the event is set.
Loop = Callable[[asyncio.Event], Awaitable[None]]


def loops(app: App) -> dict[str, Loop]:
    """The server's loops besides its workers, by name."""
    return {
        "schedules": app.schedules.run,  # fire due ticks
        "pollers": app.pollers.run,  # poll git repositories for new commits
        "queues": app.queues.run,  # consume message queues
        "deliveries": app.deliveries.run,  # retry deliveries that could not start runs; prune
        "retention": app.retention.run,  # prune finished runs past their keep time
    }


def start(app: App, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Every loop of :func:`loops`, started on the running event loop."""
    return [
        asyncio.create_task(_run(loop, stop), name=f"lockgate-{name}")
        for name, loop in loops(app).items()
    ]


async def _run(loop: Loop, stop: asyncio.Event) -> None:
    await loop(stop)
