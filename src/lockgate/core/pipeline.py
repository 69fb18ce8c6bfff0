"""Pipelines: a named, versioned, ordered list of steps with params and lifecycle hooks."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lockgate.core.codec import check_serialisable, json_schema, type_name
from lockgate.core.conditions import condition_problems
from lockgate.core.functions import fingerprint
from lockgate.core.hooks import STEP_POINTS, HookChain, HookPoint, LifecycleHook, StepHook
from lockgate.core.step import Step
from lockgate.errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def _compatible(produced: Any, expected: Any) -> bool:
    # Any (a kind step's output, an approval's) is checked when the value arrives.
    if produced is None or expected is None or produced == expected:
        return True
    if produced is Any or expected is Any:
        return True
    if isinstance(produced, type) and isinstance(expected, type):
        return issubclass(produced, expected)
    return False


class Pipeline:
    """An ordered list of steps, run durably; its ``version`` is a hash of its content.

    The value flowing into the first step is the run's params (decoded to ``params``);
    each step's output (or, with no declared output, its input) flows into the next.
    """

    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        params: Any = None,
        namespace: str = "default",
        description: str = "",
        hooks: Iterable[tuple[HookPoint | str, LifecycleHook]] = (),
        on_failure: str = "rollback",
        decision_timeout: float | None = None,
        on_decision_timeout: str = "rollback",
    ) -> None:
        """``on_failure``: what a step that failed for good does unless it says otherwise:
        ``"rollback"`` the run at once, or ``"ask"`` people to retry, skip or roll back;
        unanswered for ``decision_timeout`` seconds, ``on_decision_timeout`` is done
        (``rollback``, ``retry`` or ``skip``; skip only for a skippable step)."""
        for label, value in (("pipeline name", name), ("namespace", namespace)):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise DefinitionError(
                    f"{label} {value!r} is invalid: use letters, digits, '_', '.', '-' "
                    "(at most 200 characters)"
                )
        if on_failure not in ("rollback", "ask"):
            raise DefinitionError(f"on_failure {on_failure!r}: rollback or ask")
        if on_decision_timeout not in ("rollback", "retry", "skip"):
            raise DefinitionError(
                f"on_decision_timeout {on_decision_timeout!r}: rollback, retry or skip"
            )
        if decision_timeout is not None and decision_timeout <= 0:
            raise DefinitionError("decision_timeout: seconds, more than 0")
        self.on_failure = on_failure
        self.decision_timeout = decision_timeout
        self.on_decision_timeout = on_decision_timeout
        self.name = name
        self.namespace = namespace
        self.description = description
        self.params_type = params
        self.steps: tuple[Step, ...] = tuple(steps)
        self.hooks = HookChain(hooks)
        self._validate()
        self.version = self._hash()

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def hook(
        self, point: HookPoint | str, *, step: str | None = None
    ) -> Callable[[LifecycleHook], LifecycleHook]:
        """Decorator: register a lifecycle hook at ``point`` (changes the version); with
        ``step``, it is called for that step only (``step_started``, ``step_completed``,
        ``step_failed``)."""

        def register(fn: LifecycleHook) -> LifecycleHook:
            self.hooks.add(point, self.for_step(point, step, fn) if step is not None else fn)
            self.version = self._hash()
            return fn

        return register

    def for_step(self, point: HookPoint | str, step: str, hook: LifecycleHook) -> StepHook:
        """``hook`` at ``point`` for step ``step`` only; refused for a run-level point or a
        step the pipeline does not have."""
        where = f"pipeline {self.key!r}"
        if HookPoint(point) not in STEP_POINTS:
            points = ", ".join(sorted(p.value for p in STEP_POINTS))
            raise DefinitionError(f"{where}: a hook for one step goes at {points}, not {point}")
        if step not in {s.name for s in self.steps}:
            raise DefinitionError(f"{where}: a hook for step {step!r}, which it does not have")
        return StepHook(step, hook)

    def asks_on_failure(self, step: Step) -> bool:
        """Whether ``step``, once failed for good, waits for people to decide."""
        return (step.on_failure or self.on_failure) == "ask"

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def _validate(self) -> None:
        where = f"pipeline {self.key!r}"
        if not self.steps:
            raise DefinitionError(f"{where}: a pipeline needs at least one step")
        seen: set[str] = set()
        for s in self.steps:
            if not isinstance(s, Step):
                raise DefinitionError(f"{where}: {s!r} is not a Step (decorate it with @step)")
            if s.name in seen:
                raise DefinitionError(
                    f"{where}: step name {s.name!r} is used twice; "
                    "use step.rename() to reuse a step"
                )
            seen.add(s.name)
        check_serialisable(self.params_type, f"{where} params")
        schema = self.params_schema() or {}
        params = list((schema.get("properties") or {}) if isinstance(schema, dict) else {})
        problems = [
            f"step {s.name!r}: {problem}"
            for i, s in enumerate(self.steps)
            if s.checks is not None
            for problem in s.checks(params, [e.name for e in self.steps[:i]])
        ]
        declared = params if isinstance(schema, dict) and schema.get("properties") else None
        problems += [
            f"step {s.name!r}: {problem}"
            for i, s in enumerate(self.steps)
            if s.condition is not None
            for problem in condition_problems(
                s.condition, declared, [e.name for e in self.steps[:i]]
            )
        ]
        if problems:
            raise DefinitionError(f"{where}: " + "; ".join(problems))
        flowing, source = self.params_type, "the params"
        for s in self.steps:
            if not _compatible(flowing, s.input_type):
                raise DefinitionError(
                    f"{where}: step {s.name!r} expects input {type_name(s.input_type)} "
                    f"but {source} produces {type_name(flowing)}"
                )
            if s.output_type is not None:
                flowing, source = s.output_type, f"step {s.name!r}"

    def params_schema(self) -> dict[str, Any] | None:
        """The JSON schema of the params, for validation and display."""
        return json_schema(self.params_type)

    def describe(self) -> dict[str, Any]:
        """The pipeline as plain data (stored with each registered version)."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "description": self.description,
            "params": self.params_schema(),
            "steps": [s.describe() for s in self.steps],
            "hooks": [[p.value, fingerprint(h)] for p, h in self.hooks.items()],
            **({"on_failure": self.on_failure} if self.on_failure != "rollback" else {}),
            **(
                {"decision_timeout": self.decision_timeout, "on_timeout": self.on_decision_timeout}
                if self.decision_timeout is not None
                else {}
            ),
        }

    def _hash(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Pipeline({self.key!r}, version={self.version!r}, steps={len(self.steps)})"


def split_name(name: str, namespace: str) -> tuple[str, str]:
    """(namespace, name) of ``name`` or ``namespace/name``."""
    if "/" in name:
        ns, _, short = name.partition("/")
        return ns, short
    return namespace, name
