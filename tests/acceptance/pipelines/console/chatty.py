"""Pipelines for the console's browser tests: logs that arrive over time, and a failure
that rolls back."""

from __future__ import annotations

import time

from pydantic import BaseModel

from lockgate import Pipeline, StepContext, step


class Lines(BaseModel):
    lines: int = 8
    pause: float = 0.4


@step
def talk(ctx: StepContext, p: Lines) -> dict[str, int]:
    for n in range(p.lines):
        ctx.log.info("\x1b[32mline %d\x1b[0m of %d", n + 1, p.lines)
        time.sleep(p.pause)
    return {"said": p.lines}


def undo_prepare(ctx: StepContext) -> None:
    ctx.log.info("prepare undone")


@step(rollback=undo_prepare)
def prepare(ctx: StepContext) -> None:
    ctx.log.info("prepared")


@step
def explode(ctx: StepContext) -> None:
    raise RuntimeError("the database migration failed: column already exists")


chatty = Pipeline("chatty", [talk], params=Lines)
breaks = Pipeline("breaks", [prepare, explode])


@step(on_failure="ask", skippable=True)
def wobble(ctx: StepContext) -> str:
    if ctx.attempt == 1:
        raise RuntimeError("the registry timed out")
    return f"attempt {ctx.attempt} worked"


wobbly = Pipeline("wobbly", [wobble])
