"""Pipeline files (YAML or JSON) -> the same core objects as a Python pipeline.

Every problem in a file is reported at once, each with file, line, column and what is
wrong: unknown or missing fields, unknown step kinds, duplicate step names, bad or unknown
placeholders, functions that do not import.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lockgate.core.conditions import condition_problems
from lockgate.core.context import StepContext
from lockgate.core.hooks import STEP_POINTS, HookEvent, LifecycleHook, StepHook
from lockgate.core.pipeline import Pipeline
from lockgate.core.retry import Retry
from lockgate.core.step import Step
from lockgate.core.templates import TemplateError, check
from lockgate.errors import DefinitionError, NothingToUndo, StepError
from lockgate.specs.document import Problem, SpecError, locate, parse, plain
from lockgate.specs.model import (
    HookCommon,
    PipelineSpec,
    RollbackCommon,
    StepCommon,
    params_model,
)
from lockgate.steps import KINDS, StepKind
from lockgate.steps.python import origin_problem
from lockgate.steps.shell import run_workspace

Loc = tuple[int | str, ...]
COMMON_FIELDS = frozenset(f.alias or name for name, f in StepCommon.model_fields.items())


class Collector:
    """Gathers problems with their places in the document."""

    def __init__(self, file: str, root: Any) -> None:
        self.file = file
        self.root = root
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        line, col = locate(self.root, loc, at_key=at_key)
        where = ".".join(str(p) for p in loc)
        self.problems.append(
            Problem(self.file, line, col, f"{where}: {message}" if where else message)
        )

    def pydantic(self, prefix: Loc, exc: ValidationError) -> None:
        for err in exc.errors():
            loc = (*prefix, *(p for p in err["loc"] if p != "[key]"))
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            elif err["type"] == "missing":
                message = "missing field"
            self.add(loc, message, at_key="[key]" in err["loc"])


M = TypeVar("M", bound=BaseModel)


def read_spec(path: Path, model: type[M]) -> tuple[Collector, dict[str, Any], M | None]:
    """A file's problems so far, its plain data, and its top level as ``model`` (``None``
    if that was refused: the caller goes on checking the rest, to report all at once)."""
    root = parse(path)
    problems = Collector(str(path), root)
    data = plain(root)
    try:
        return problems, data, model.model_validate(data)
    except ValidationError as exc:
        problems.pydantic((), exc)
        return problems, data, None


def load_file(path: Path, *, secret_names: Callable[[str], bool] = lambda _: True) -> Pipeline:
    """The pipeline defined in ``path``; :class:`SpecError` lists every problem."""
    problems, data, spec = read_spec(path, PipelineSpec)
    # Go on with the steps even if the top level is wrong: report everything at once.
    raw_params = data.get("params")
    declared = raw_params if isinstance(raw_params, dict) else {}
    params = list(declared)
    raw_steps = data.get("steps")
    names: list[str] = []
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        built = build_step(raw, ("steps", i), declared, names, problems, secret_names)
        if built is not None:
            steps.append(built)
    hooks: list[tuple[str, LifecycleHook]] = []
    raw_hooks = data.get("hooks")
    for point, entries in raw_hooks.items() if isinstance(raw_hooks, dict) else []:
        for i, raw in enumerate(entries if isinstance(entries, list) else []):
            hook = _hook(raw, ("hooks", point, i), point, params, names, problems, secret_names)
            if hook is not None:
                only = raw.get("step") if isinstance(raw, dict) else None
                if isinstance(only, str) and only not in names:
                    problems.add(("hooks", point, i, "step"), f"no step is called {only!r}")
                elif isinstance(only, str) and point not in STEP_POINTS:
                    where = ", ".join(sorted(STEP_POINTS))
                    problems.add(
                        ("hooks", point, i, "step"), f"a hook for one step goes at {where}"
                    )
                else:
                    hooks.append((point, StepHook(only, hook) if isinstance(only, str) else hook))
    if problems.problems or spec is None:
        raise SpecError(problems.problems)
    try:
        return Pipeline(
            spec.name,
            steps,
            params=params_model(spec.name, spec.params),
            namespace=spec.namespace,
            description=spec.description,
            hooks=hooks,
            on_failure=spec.on_failure,
            decision_timeout=spec.decision_timeout,
            on_decision_timeout=spec.on_decision_timeout,
        )
    except DefinitionError as exc:
        raise SpecError([Problem(str(path), 1, 1, exc.message)]) from exc


def build_step(
    raw: Any,
    loc: Loc,
    params: list[str] | Mapping[str, Any],
    names: list[str],
    problems: Collector,
    secret_names: Callable[[str], bool],
    parent: str | None = None,
    deferred: bool = False,
) -> Step | None:
    """One step of a pipeline file (or made in Python: ``deferred`` leaves the checks of
    its placeholders' names to the pipeline it joins, through ``Step.checks``)."""
    model = StepCommon if parent is None else RollbackCommon
    param_specs = params if isinstance(params, Mapping) else {}
    params = list(params)
    if not isinstance(raw, dict):
        problems.add(loc, "a step must be a mapping")
        return None
    try:
        common = model.model_validate(raw)
    except ValidationError as exc:
        problems.pydantic(loc, exc)
        return None
    name = common.name if parent is None else f"{parent}.{common.name}"
    if parent is None:
        if name in names:
            problems.add((*loc, "name"), f"step name {name!r} is used twice")
        earlier = list(names)
        names.append(name)
    else:
        earlier = list(names)  # a rollback may read its own step's output too
    kind = KINDS.get(common.kind)
    if kind is None:
        problems.add(
            (*loc, "kind"), f"unknown step kind {common.kind!r} (known: {', '.join(sorted(KINDS))})"
        )
        return None
    raw_config = {k: v for k, v in raw.items() if k not in COMMON_FIELDS}
    config = _check_config(kind, raw_config, loc, problems)

    def named(params: Sequence[str], earlier: Sequence[str]) -> list[tuple[str, str]]:
        found = [
            (key, problem)
            for key, value in raw_config.items()
            for problem in check(value, params=params, earlier_steps=earlier, secrets=secret_names)
        ]
        return found + list(kind.check_placeholders(raw_config, param_specs))

    if not deferred:
        for key, problem in named(params, earlier):
            problems.add((*loc, key), problem)
        if common.if_ is not None:
            declared = params if param_specs else None
            for problem in condition_problems(common.if_, declared, earlier):
                problems.add((*loc, "if"), problem)
    if parent is not None and common.if_ is not None:
        problems.add((*loc, "if"), "a rollback runs when its step ran: it takes no if")
    rollback = None
    if common.rollback is not None:
        rollback = build_step(
            common.rollback,
            (*loc, "rollback"),
            params,
            names,
            problems,
            secret_names,
            parent=common.name,
            deferred=deferred,
        )
    if config is None:
        return None
    checks = None
    if deferred:

        def checks(params: Sequence[str], earlier: Sequence[str]) -> list[str]:
            mine = [f"{key}: {problem}" for key, problem in named(params, earlier)]
            inner = rollback.checks if rollback is not None else None
            return mine + (
                [f"rollback: {p}" for p in inner(params, [*earlier, name])] if inner else []
            )

    return Step(
        name=name,
        execute=_executor(kind, raw_config, name, parent, Path(problems.file).parent),
        rollback_fn=rollback.execute if rollback is not None else None,
        on_error="ignore" if common.on_error == "ignore" else None,
        on_failure=common.on_failure,
        skippable=common.skippable,
        log_level=common.log_level,
        retry=common.retry.policy() if common.retry else Retry(),
        timeout=common.timeout,
        idempotent=kind.idempotent if common.idempotent is None else common.idempotent,
        output_type=Any if kind.produces_output else None,
        config={
            "kind": kind.name,
            **raw_config,
            "rollback": common.rollback,
            "description": common.description,
        },
        checks=checks,
        condition=common.if_ if parent is None else None,
    )


HOOK_FIELDS = {"hook": ["point", "step", "error", "status"]}


def _hook(
    raw: Any,
    loc: Loc,
    point: str,
    params: list[str],
    names: list[str],
    problems: Collector,
    secret_names: Callable[[str], bool],
) -> LifecycleHook | None:
    if not isinstance(raw, dict):
        problems.add(loc, "a hook must be a mapping")
        return None
    try:
        common = HookCommon.model_validate(raw)
    except ValidationError as exc:
        problems.pydantic(loc, exc)
        return None
    kind = KINDS[common.kind]
    raw_config = {k: v for k, v in raw.items() if k not in HookCommon.model_fields}
    config = _check_config(kind, raw_config, loc, problems)
    for key, value in raw_config.items():
        for problem in check(
            value, params=params, earlier_steps=names, secrets=secret_names, extra=HOOK_FIELDS
        ):
            problems.add((*loc, key), problem)
    if config is None:
        return None
    run_kind = _executor(kind, raw_config, f"hook {point}")

    async def hook(event: HookEvent) -> None:
        ctx = StepContext(
            run_id=event.run_id,
            pipeline=event.pipeline,
            step=f"hook.{point}",
            attempt=1,
            params=event.raw_params,
            bag=event.context,
            noop=event.noop,
            log=event.log,
            requested_by=event.requested_by,
            outputs=event.outputs,
            raw_params=event.raw_params,
            secrets=event.secrets,
            settings=event.settings,
        )
        extra = {"point": point, "step": event.step, "error": event.error, "status": event.status}
        await run_kind(ctx, None, extra={"hook": extra})

    # The version hash sees hooks by name: put the hook's content into it.
    digest = hashlib.sha256(json.dumps(raw_config, sort_keys=True, default=str).encode())
    hook.__qualname__ = f"hook:{point}:{kind.name}:{digest.hexdigest()[:12]}"
    return hook


def _check_config(kind: StepKind, raw_config: dict[str, Any], loc: Loc, problems: Collector) -> Any:
    """The kind's config as written, checked as far as it can be before substitution."""
    # A lone placeholder in a text field is text already; elsewhere its type is unknown
    # until run time, so it is left out of the check.
    text_fields = {n for n, f in kind.config.model_fields.items() if f.annotation in (str, "str")}
    kept = {k: v for k, v in raw_config.items() if k in text_fields and _lone(v)}
    try:
        config = kind.config.model_validate({**_placeholders_as_plain(raw_config), **kept})
    except ValidationError as exc:
        problems.pydantic(loc, exc)
        return None
    if not _has_placeholders(raw_config):
        try:
            kind.check(config)
        except ValueError as exc:
            problems.add(loc, str(exc))
            return None
    return config


def _has_placeholders(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_placeholders(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholders(v) for v in value)
    return False


def _placeholders_as_plain(value: Any) -> Any:
    """Lone placeholders stand in for values of any type until run time: drop them."""
    if isinstance(value, dict):
        return {k: _placeholders_as_plain(v) for k, v in value.items() if not _lone(v)}
    if isinstance(value, list):
        return [_placeholders_as_plain(v) for v in value]
    return value


def _lone(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("${")
        and value.endswith("}")
        and value.count("${") == 1
    )


def scope(ctx: StepContext) -> dict[str, Any]:
    """What ``${...}`` can name while a step of this run executes."""
    params = ctx.raw_params if isinstance(ctx.raw_params, Mapping) else {}
    return {
        **params,
        "steps": ctx.outputs.json,
        "run": {
            "id": ctx.run_id,
            "requested_by": ctx.requested_by,
            "pipeline": ctx.pipeline,
            "workspace": str(run_workspace(ctx.settings.workspace_dir, ctx.run_id)),
        },
        "secrets": ctx.secrets,
    }


def _executor(
    kind: StepKind,
    raw_config: dict[str, Any],
    name: str,
    parent: str | None = None,
    home: Path | None = None,
) -> Callable[..., Any]:
    """The step's execute function; for the rollback of step ``parent``, one that is
    skipped (:class:`NothingToUndo`) when it needs ``parent``'s output and there is none.
    A ``python`` step calls only functions of the pipeline's own modules (under ``home``)
    or of modules allowed in settings."""
    mention = re.compile(rf"steps\.{re.escape(parent)}[.}}]") if parent is not None else None
    needs_output = mention is not None and mention.search(json.dumps(raw_config)) is not None

    async def execute(ctx: StepContext, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        if needs_output and parent not in ctx.outputs:
            raise NothingToUndo(
                f"step {parent!r} failed before it produced an output, and its rollback "
                "needs that output: there is nothing to undo"
            )
        function = raw_config.get("function")
        if kind.name == "python" and isinstance(function, str):
            problem = origin_problem(function, home, ctx.settings.python_allow)
            if problem is not None:
                raise StepError(f"step {name!r}: {problem}")
        values = {**scope(ctx), **(extra or {})}
        try:
            rendered = kind.render_config(raw_config, values)
        except TemplateError as exc:
            raise StepError(f"step {name!r}: {exc}") from exc
        try:
            config = kind.config.model_validate(rendered)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise StepError(
                f"step {name!r}: config after substitution is invalid: {problems}"
            ) from exc
        return await kind.execute(ctx, config, value)

    execute.__qualname__ = f"{kind.name}:{name}"
    return execute
