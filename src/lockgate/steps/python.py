"""``python``: call a registered Python function by its dotted path."""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
