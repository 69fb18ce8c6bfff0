"""Pipelines the acceptance tests run in real worker subprocesses.

Every execute appends ``run step attempt`` to the ledger file named by LOCKGATE_LEDGER.
"""

from __future__ import annotations

import asyncio
import os
import time

from lockgate import Pipeline, StepContext, step


def ledger(ctx: StepContext, what: str = "") -> None:
    with open(os.environ["LOCKGATE_LEDGER"], "a") as fh:
        fh.write(f"{ctx.run_id} {ctx.step}{what} {ctx.attempt}\n")
        fh.flush()
        os.fsync(fh.fileno())


@step
def prepare(ctx: StepContext) -> dict[str, int]:
    ledger(ctx)
    return {"prepared": 1}


@step
def slow(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    ledger(ctx)
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))
    return {**v, "slow": 1}


@step
def finish(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    ledger(ctx)
    return {**v, "finished": 1}


@step(idempotent=False)
def charge(ctx: StepContext) -> None:
    ledger(ctx)
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))


@charge.rollback
def refund(ctx: StepContext) -> None:
    ledger(ctx, ".rollback")


@step(idempotent=False)
def order(ctx: StepContext) -> None:
    """Saves what it created for its rollback, then is killed before it finishes."""
    ctx.save({"order": f"o-{ctx.run_id}"})
    ledger(ctx)
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))


@step(idempotent=False)
async def async_order(ctx: StepContext) -> None:
    """``order`` as an async step: the save is written from the worker's own loop."""
    ctx.save({"order": f"o-{ctx.run_id}"})
    ledger(ctx)
    await asyncio.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))


@step(idempotent=False)
async def awaited_order(ctx: StepContext) -> None:
    """``order`` as an async step that awaits its save (the loop goes on meanwhile)."""
    await ctx.asave({"order": f"o-{ctx.run_id}"})
    ledger(ctx)
    await asyncio.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))


def cancel_order(ctx: StepContext) -> None:
    ledger(ctx, f".rollback:{ctx.load({}).get('order')}")


order.rollback(cancel_order)
async_order.rollback(cancel_order)
awaited_order.rollback(cancel_order)


@step
async def hog(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    """Blocks its worker's loop: nothing else (a RUNNING write) happens until it ends."""
    ledger(ctx)
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))
    return {**v, "hog": 1}


@step
async def nap(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    """Like ``slow``, without holding a thread: many can be in flight at once."""
    ledger(ctx)
    await asyncio.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))
    return {**v, "nap": 1}


crashy = Pipeline("crashy", [prepare, slow, finish])
napping = Pipeline("napping", [prepare, nap, finish])
hogging = Pipeline("hogging", [prepare, hog, finish])
once = Pipeline("once", [prepare, charge, finish])
ordering = Pipeline("ordering", [prepare, order, finish])
async_ordering = Pipeline("async-ordering", [prepare, async_order, finish])
awaited_ordering = Pipeline("awaited-ordering", [prepare, awaited_order, finish])


@step
def broken(ctx: StepContext) -> None:
    raise RuntimeError("always fails")


failing = Pipeline("failing", [prepare, broken])


@step(on_failure="ask")
def wobbly(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
    """Fails its first attempt (and asks what next); a later one is slow, then succeeds."""
    ledger(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    time.sleep(float(os.environ.get("LOCKGATE_SLOW_SECONDS", "1.5")))
    return {**v, "wobbly": ctx.attempt}


asking = Pipeline("asking", [prepare, wobbly, finish])
