"""Pipelines the acceptance tests run in real worker subprocesses.

Every execute appends ``run step attempt`` to the ledger file named by LOCKGATE_LEDGER.
"""

from __future__ import annotations

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


crashy = Pipeline("crashy", [prepare, slow, finish])
once = Pipeline("once", [prepare, charge, finish])


@step
def broken(ctx: StepContext) -> None:
    raise RuntimeError("always fails")


failing = Pipeline("failing", [prepare, broken])
