"""The pipelines ``bench/chaos.py`` and ``bench/cluster.py`` kill workers under.

``chaos``: 5 steps with short waits, a rollback branch, one step that is not idempotent.
``quick``: 3 steps that only record themselves (one not idempotent), for throughput.

Every execute appends ``time run step attempt`` to the ledger named by LOCKGATE_LEDGER
before the step's work, so the ledger counts every execution that began. The line is
fsynced unless LOCKGATE_LEDGER_FSYNC=0 (a plain append survives SIGKILL of the process; the
fsync also survives the machine).
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from pydantic import BaseModel

from lockgate import HookEvent, Pipeline, StepContext, step


class ChaosParams(BaseModel):
    n: int
    fail: bool = False


def record(ctx: StepContext, what: str) -> None:
    line = f"{time.time():.6f} {ctx.run_id} {what} {ctx.attempt}\n"
    fd = os.open(os.environ["LOCKGATE_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
        if os.environ.get("LOCKGATE_LEDGER_FSYNC") != "0":
            os.fsync(fd)
    finally:
        os.close(fd)


async def work() -> None:
    await asyncio.sleep(random.uniform(0.02, 0.15))


@step
async def fetch(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "fetch")
    await work()
    return p


@step
async def build(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "build")
    await ctx.asave({"artifact": p.n})
    await work()
    return p


@build.rollback
async def unbuild(ctx: StepContext, p: ChaosParams) -> None:
    record(ctx, "build.rollback")


@step(idempotent=False)
async def migrate(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "migrate")
    await work()
    return p


@migrate.rollback
async def unmigrate(ctx: StepContext, p: ChaosParams) -> None:
    record(ctx, "migrate.rollback")


@step
async def deploy(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "deploy")
    await work()
    if p.fail:
        raise RuntimeError("deploy refused (the rollback branch)")
    return p


@step
def announce(ctx: StepContext, p: ChaosParams) -> dict[str, int]:
    record(ctx, "announce")
    if ctx.bag.get("started") != "yes":
        raise RuntimeError("the run_started hook's context was lost")
    return {"n": p.n}


chaos = Pipeline("chaos", [fetch, build, migrate, deploy, announce], params=ChaosParams)


@chaos.hook("run_started")
def started(event: HookEvent) -> None:
    event.context["started"] = "yes"


@step
def first(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "first")
    return p


@step(idempotent=False)
def once(ctx: StepContext, p: ChaosParams) -> ChaosParams:
    record(ctx, "once")
    return p


@step
def last(ctx: StepContext, p: ChaosParams) -> dict[str, int]:
    record(ctx, "last")
    return {"n": p.n}


quick = Pipeline("quick", [first, once, last], params=ChaosParams)
