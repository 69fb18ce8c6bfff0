"""``python``: call a registered Python function by its dotted path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from lockgate.core.context import StepContext
from lockgate.core.functions import arity, call
from lockgate.steps.base import KindConfig, StepKind


class PythonConfig(KindConfig):
    """Which function, and optionally what to pass it."""

    function: str = Field(
        pattern=r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$",
        description="package.module:function (or package.module.function).",
    )
    input: Any = Field(
        default=None, description="The value passed to the function; default: the step's input."
    )


def resolve(path: str) -> Callable[..., Any]:
    """The callable at ``package.module:name``; ``ValueError`` says what is missing."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ValueError(f"module {module_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def origin_problem(function: str, home: Path | None, allow: Sequence[str]) -> str | None:
    """Why ``function`` may not be called, or ``None``: it must live in the pipeline's own
    modules (files under ``home``, the pipeline file's directory) or in a module allowed
    by prefix (``LOCKGATE_PYTHON_ALLOW``) — never an arbitrary library function."""
    module_name = function.partition(":")[0] if ":" in function else function.rpartition(".")[0]
    if any(module_name == a or module_name.startswith(f"{a}.") for a in allow):
        return None
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) if module is not None else _locate(module_name)
    if home is not None and file and Path(file).resolve().is_relative_to(home.resolve()):
        return None
    where = f"the pipeline's own modules (under {home})" if home else "the pipeline's own modules"
    return f"function {function!r} is not in {where} nor in a module LOCKGATE_PYTHON_ALLOW allows"


def _locate(module_name: str) -> str | None:
    """Where a module not imported yet would load from (without running it)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


class PythonKind(StepKind):
    """Run Python code that lives in an importable module."""

    name = "python"
    config = PythonConfig

    def check(self, config: PythonConfig) -> None:
        """The function must import now, not at run time."""
        fn = resolve(config.function)
        arity(fn, config.function)

    async def execute(self, ctx: StepContext, config: PythonConfig, value: Any) -> Any:
        """Call the function with ``(ctx, value)`` (or ``(ctx)``); its result is the output."""
        fn = resolve(config.function)
        arg = value if config.input is None else config.input
        result = await (call(fn, ctx) if arity(fn, config.function) == 1 else call(fn, ctx, arg))
        return value if result is None else result
