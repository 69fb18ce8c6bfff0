"""Run-level lifecycle hooks, composed as a chain."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lockgate.core.context import StepLogger, StepOutputs
from lockgate.errors import DefinitionError
from lockgate.settings import Settings


class HookPoint(StrEnum):
    """The named points of a run at which lifecycle hooks are called."""

    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    ROLLING_BACK = "rolling_back"
    RUN_FINISHED = "run_finished"


#: Points where a raising hook fails the step or run; elsewhere its error is only logged.
BLOCKING_POINTS = frozenset(
    {HookPoint.RUN_STARTED, HookPoint.STEP_STARTED, HookPoint.STEP_COMPLETED}
)


@dataclass
class HookEvent:
    """What a lifecycle hook receives."""

    point: HookPoint
    run_id: str
    pipeline: str
    #: The run's shared context bag; changes are checkpointed with the run.
    context: MutableMapping[str, Any]
    noop: bool
    log: StepLogger
    step: str | None = None
    error: str | None = None
    status: str | None = None
    #: Who started the run.
    requested_by: str | None = None
    #: The run's params as submitted (JSON).
    raw_params: Any = None
    #: Outputs of the completed steps (typed as their steps declare; ``.json`` as stored).
    outputs: StepOutputs = field(default_factory=lambda: StepOutputs({}, {}))
    #: Named secrets (values are masked in logs).
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: The worker's settings.
    settings: Settings = field(default_factory=Settings)


LifecycleHook = Callable[[HookEvent], Any]


#: Points that belong to one step (a hook there may be given for one named step only).
STEP_POINTS = frozenset({HookPoint.STEP_STARTED, HookPoint.STEP_COMPLETED, HookPoint.STEP_FAILED})


class StepHook:
    """A lifecycle hook called only at the points of one named step."""

    def __init__(self, step: str, hook: LifecycleHook) -> None:
        from lockgate.core.functions import fingerprint

        if not callable(hook):
            raise DefinitionError(f"hook for step {step!r} must be callable")
        self.step = step
        self.hook = hook
        # The version hash sees the hook's own fingerprint and the step it is for.
        self.__qualname__ = f"{fingerprint(hook)}[step={step}]"

    def __call__(self, event: HookEvent) -> Any:
        if event.step == self.step:
            return self.hook(event)
        return None


class HookChain:
    """Hooks called in registration order at each point; each sees the bag the last left."""

    def __init__(self, hooks: Iterable[tuple[HookPoint | str, LifecycleHook]] = ()) -> None:
        self._hooks: dict[HookPoint, list[LifecycleHook]] = {p: [] for p in HookPoint}
        for point, hook in hooks:
            self.add(point, hook)

    def add(self, point: HookPoint | str, hook: LifecycleHook) -> None:
        """Append ``hook`` to the chain at ``point``."""
        try:
            key = HookPoint(point)
        except ValueError as exc:
            valid = ", ".join(p.value for p in HookPoint)
            raise DefinitionError(f"unknown hook point {point!r}; valid: {valid}") from exc
        if not callable(hook):
            raise DefinitionError(f"hook for {key.value} must be callable")
        self._hooks[key].append(hook)

    def at(self, point: HookPoint) -> list[LifecycleHook]:
        """The hooks registered at ``point``, in order."""
        return self._hooks[point]

    def items(self) -> list[tuple[HookPoint, LifecycleHook]]:
        """Every (point, hook) pair in order."""
        return [(p, h) for p in HookPoint for h in self._hooks[p]]

    async def fire(self, event: HookEvent) -> None:
        """Call each hook at ``event.point`` in turn, awaiting async ones."""
        from lockgate.core.functions import call

        for hook in self._hooks[event.point]:
            if inspect.iscoroutinefunction(hook):
                await hook(event)
            else:
                await call(hook, event)
