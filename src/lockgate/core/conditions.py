"""Step conditions: an ``if:`` expression over the run's params and its earlier steps,
evaluated in a sandbox that can call nothing (jinja2's sandboxed expressions, with every
call refused when the pipeline is loaded).

What an expression sees:

- ``params``: the run's params (``params.env == 'prod'``);
- ``steps``: each earlier step's ``outcome`` (``completed`` or ``skipped``) and ``output``
  (``steps.tests.outcome == 'completed'``, ``steps['build-image'].output.tag``);
- ``run``: its ``id``, ``pipeline``, ``namespace`` and ``requested_by``.

A name it does not know is a load error; a value missing when it runs fails the step (a
condition never guesses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lockgate.errors import StepError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
#: The names an expression may use.
NAMES = ("params", "steps", "run")


def _parsed(expression: str) -> nodes.Template:
    return _ENV.parse("{{ (" + expression + ") }}")


def condition_problems(
    expression: str, params: Sequence[str] | None, earlier: Sequence[str]
) -> list[str]:
    """What is wrong with a step's condition (``params``: the declared params' names, or
    ``None`` when the pipeline declares none; ``earlier``: the steps before it)."""
    if not isinstance(expression, str) or not expression.strip():
        return ["if: an expression, e.g. params.env == 'prod'"]
    try:
        tree = _parsed(expression)
    except TemplateSyntaxError as exc:
        return [f"if: {expression!r} is not an expression: {exc.message}"]
    problems = []
    unknown = sorted({n.name for n in tree.find_all(nodes.Name)} - set(NAMES))
    if unknown:
        problems.append(f"if: unknown name(s) {', '.join(unknown)} (use {', '.join(NAMES)})")
    if any(True for _ in tree.find_all(nodes.Call)):
        problems.append("if: a condition calls nothing (no function or method calls)")
    for name in _referenced(tree, "steps"):
        if name not in earlier:
            problems.append(f"if: steps.{name} is not a step before this one")
    if params is not None:
        for name in _referenced(tree, "params"):
            if name not in params:
                problems.append(f"if: params.{name} is not a param of the pipeline")
    return problems


def _referenced(tree: nodes.Template, root: str) -> list[str]:
    """The names read from ``root`` (``steps.build``, ``steps['build']``)."""
    found = []
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == root:
            found.append(str(attr.attr))
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == root:
            key = item.arg
            if isinstance(key, nodes.Const) and isinstance(key.value, str):
                found.append(key.value)
    return found


def holds(
    expression: str,
    params: Any,
    steps: Mapping[str, Mapping[str, Any]],
    run: Mapping[str, Any],
) -> bool:
    """Whether the condition holds for this run; :class:`StepError` when it cannot be
    evaluated (a value it reads is missing, or it tries what the sandbox refuses)."""
    try:
        evaluate = _ENV.compile_expression(expression, undefined_to_none=False)
        return bool(evaluate(params=params if params is not None else {}, steps=steps, run=run))
    except (UndefinedError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
        raise StepError(f"if: {expression!r} could not be evaluated: {exc}") from None
