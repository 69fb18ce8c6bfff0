"""The 3-step pipeline of trivial steps that ``bench/throughput.py`` runs.

A module of its own so that worker subprocesses (``--workers N``) load the same version.
"""

from __future__ import annotations

import asyncio
import time

from lockgate import App, HookEvent, Pipeline, RunStatus, StepContext, step

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


async def one_run(app: App, finished: dict[str, asyncio.Event] = FINISHED) -> float:
    """Start-to-done milliseconds of one run of ``bench`` (registered on ``app``)."""
    t0 = time.perf_counter()
    run = app.start_run("bench", {"n": 0})
    event = finished.setdefault(run.id, asyncio.Event())
    await event.wait()  # the run_finished hook fires just before the final commit
    while app.store.get_run(run.id).status != RunStatus.SUCCEEDED:
        await asyncio.sleep(0.0002)  # yield the GIL to the committing thread
    del finished[run.id]
    return (time.perf_counter() - t0) * 1000
