"""A pipeline whose failure carries a secret in its error (and so in its rollback's cause):
for the test that no credential reaches an exported trace."""

from __future__ import annotations

from lockgate import Pipeline, StepContext, step


def disconnect(ctx: StepContext) -> None:
    ctx.log.info("disconnected")


@step(rollback=disconnect)
def connect(ctx: StepContext) -> dict[str, str]:
    return {"connected": "yes"}


@step
def migrate(ctx: StepContext, v: dict[str, str]) -> dict[str, str]:
    raise RuntimeError(f"login refused with password {ctx.secrets['DB_PASSWORD']}")


pipeline = Pipeline("leaky", steps=[connect, migrate])
