"""The shape of a pipeline file, as pydantic models (also the source of docs/pipelines.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lockgate.core.params import ParamSpec, params_model
from lockgate.core.retry import Retry

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
MAX_STEPS = 200
#: Names a param cannot take: they are the other roots of ``${...}``.
RESERVED = frozenset({"steps", "run", "secrets"})


class Strict(BaseModel):
    """Unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class RetrySpec(Strict):
    """``retry:`` of a step."""

    attempts: int = Field(1, ge=1, le=100, description="Attempts in all, the first included.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the second attempt.")
    multiplier: float = Field(2.0, ge=1, description="Growth of the wait per attempt.")
    max_backoff: float = Field(300.0, ge=0, description="Longest wait between attempts.")
    jitter: float = Field(0.1, ge=0, le=1, description="Random spread of each wait (fraction).")

    def policy(self) -> Retry:
        """The core retry policy."""
        return Retry(
            attempts=self.attempts,
            backoff=self.backoff,
            multiplier=self.multiplier,
            max_backoff=self.max_backoff,
            jitter=self.jitter,
        )


class StepCommon(BaseModel):
    """Fields every step has; the rest belong to its kind."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=NAME)
    kind: str
    description: str = ""
    timeout: float | None = Field(None, gt=0, description="Seconds before the step is stopped.")
    retry: RetrySpec | None = None
    on_error: Literal["fail", "ignore"] = "fail"
    on_failure: Literal["rollback", "ask"] | None = Field(
        None,
        description="Failed for good: roll back at once, or ask to retry, skip or roll back.",
    )
    skippable: bool = Field(False, description="May a person skip it after it failed?")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="The lowest level of its log lines that are kept."
    )
    idempotent: bool | None = None
    rollback: dict[str, Any] | None = Field(None, description="Another step, of any kind.")
    if_: str | None = Field(
        None,
        alias="if",
        max_length=2000,
        description="When the step runs: an expression over params, steps and run; false, "
        "the step is skipped.",
    )


class RollbackCommon(StepCommon):
    """A rollback is a step whose name defaults to ``<step>.rollback``."""

    name: str = Field("rollback", pattern=NAME)


class HookCommon(BaseModel):
    """A lifecycle hook: a step kind run at a point of the run (no name, retry or rollback)."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["api", "python", "shell"]
    description: str = ""
    step: str | None = Field(
        None, description="Call it for this step only (step_started, step_completed, step_failed)."
    )


class PipelineSpec(Strict):
    """A pipeline file's top level."""

    name: str = Field(pattern=NAME)
    namespace: str = Field("default", pattern=NAME)
    description: str = ""
    on_failure: Literal["rollback", "ask"] = Field(
        "rollback", description="What a failed step does unless it says: rollback or ask."
    )
    decision_timeout: float | None = Field(
        None, gt=0, description="Seconds a failed step that asks waits for a decision."
    )
    on_decision_timeout: Literal["rollback", "retry", "skip"] = Field(
        "rollback", description="What is done when no one decided in time."
    )
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[Any] = Field(min_length=1, max_length=MAX_STEPS)
    hooks: dict[
        Literal[
            "run_started",
            "step_started",
            "step_completed",
            "step_failed",
            "rolling_back",
            "run_finished",
        ],
        list[Any],
    ] = Field(default_factory=dict, description="Lifecycle hooks: point -> list of hook steps.")

    @field_validator("params")
    @classmethod
    def _names(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in value:
            if name in RESERVED:
                raise ValueError(f"a param cannot be called {name!r}")
            if not name.isidentifier():
                raise ValueError(f"param name {name!r} must be an identifier")
        return value


__all__ = [
    "HookCommon",
    "ParamSpec",
    "PipelineSpec",
    "RetrySpec",
    "RollbackCommon",
    "StepCommon",
    "params_model",
]
