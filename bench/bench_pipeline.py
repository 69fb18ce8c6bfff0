"""The 3-step pipeline of trivial steps that ``bench/throughput.py`` runs.

A module of its own so that worker subprocesses (``--workers N``) load the same version.
"""

from __future__ import annotations

import asyncio

from lockgate import HookEvent, Pipeline, StepContext, step

#: Run id -> event set by the run_finished hook (sequential latency phase, in-process).
FINISHED: dict[str, asyncio.Event] = {}


@step
async def one(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    return {"n": v.get("n", 0) + 1}


@step
async def two(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    return {"n": v["n"] + 1}


@step
async def three(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    return {"n": v["n"] + 1}


bench = Pipeline("bench", [one, two, three])


@bench.hook("run_finished")
async def signal(event: HookEvent) -> None:
    waiter = FINISHED.get(event.run_id)
    if waiter is not None:
        waiter.set()
