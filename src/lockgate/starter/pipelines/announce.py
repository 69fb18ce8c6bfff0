"""A first Python pipeline: typed params, typed outputs, and a rollback.

lockgate run announce --pipelines pipelines -p service=web -p version=1.0.0 --wait
"""

from __future__ import annotations

from pydantic import BaseModel

from lockgate import Pipeline, StepContext, step


class Release(BaseModel):
    service: str
    version: str


class Note(BaseModel):
    text: str


@step
def write(ctx: StepContext, release: Release) -> Note:
    """Compose the announcement (a step's output is checkpointed before the next runs)."""
    return Note(text=f"{release.service} {release.version} is out")


@step
def send(ctx: StepContext) -> dict[str, str]:
    """Read an earlier step's output, typed, and 'send' it (to the step's log here)."""
    note = ctx.outputs["write"]
    ctx.log.info("announcing: %s", note.text)
    return {"sent": note.text}


@send.rollback
def retract(ctx: StepContext) -> None:
    ctx.log.info("retracting the announcement")


pipeline = Pipeline("announce", [write, send], params=Release)
