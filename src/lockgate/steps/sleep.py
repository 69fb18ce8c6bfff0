"""``sleep``: a durable wait for a duration or until a time; no worker is held meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from lockgate.core.context import StepContext
from lockgate.steps.base import KindConfig, StepKind


class SleepConfig(KindConfig):
    """How long, or until when."""

    seconds: float | None = Field(default=None, ge=0, description="Wait this long.")
    until: datetime | None = Field(
        default=None, description="Wait until this time (ISO 8601; UTC if no offset)."
    )

    @model_validator(mode="after")
    def _one_of(self) -> SleepConfig:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of seconds or until")
        return self


class SleepKind(StepKind):
    """Park the run, then go on."""

    name = "sleep"
    config = SleepConfig
    produces_output = False

    async def execute(self, ctx: StepContext, config: SleepConfig, value: Any) -> Any:
        """Park until the time comes (the body runs again then, and returns)."""
        if config.until is not None:
            until = config.until if config.until.tzinfo else config.until.replace(tzinfo=UTC)
            if ctx.noop:
                ctx.log.info("would sleep until %s", until.isoformat())
            else:
                ctx.sleep_until(until.timestamp())
        elif ctx.noop:
            ctx.log.info("would sleep %gs", config.seconds or 0.0)
        else:
            ctx.sleep(config.seconds or 0.0)
        return value
