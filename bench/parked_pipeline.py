"""The pipeline ``bench/parked.py`` parks: one step, then an approval, then one step."""

from __future__ import annotations

from lockgate import Pipeline, StepContext, step
from lockgate.kinds import approval


@step
def build(ctx: StepContext) -> None:
    pass


@step
def ship(ctx: StepContext) -> None:
    pass


gated = Pipeline("gated", [build, approval("gate", message="ship it?"), ship])
