"""What the engine does with user code and its errors: call it, describe what it raised."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lockgate.core.codec import decode
from lockgate.core.context import StepContext
from lockgate.core.functions import arity, call
from lockgate.core.step import Step
from lockgate.errors import (
    StepError,
)


async def invoke(
    fn: Callable[..., Any],
    ctx: StepContext,
    value: Any,
    before: Callable[[], None] | None = None,
) -> Any:
    """Call a step's (or hook's, or rollback's) function with ``ctx`` and, if it takes it,
    ``value``; ``before`` runs right before it (see :func:`lockgate.core.functions.call`)."""
    if arity(fn, "function") == 1:
        return await call(fn, ctx, before=before)
    return await call(fn, ctx, value, before=before)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}" if not isinstance(exc, StepError) else text


#: A row for the store (an error, a log line).
Row = dict[str, Any]
#: An event a checkpoint records: (step, status, attempt, message).
EventRow = tuple[str | None, str, int | None, str | None]


async def handle_error(
    step: Step, ctx: StepContext, data: Any, exc: BaseException, logs: Any
) -> tuple[Any, bool] | None:
    """``(value, passthrough)`` when the step's error handler recovers, else ``None``."""
    handler = step.on_error
    if handler == "ignore":
        return data, True
    assert callable(handler)
    try:
        value = decode(step.input_type, data, "input")
        return await call(handler, ctx, value, exc), False
    except Exception as again:
        logs.add(step.name, "error", f"error handler raised: {describe(again)}")
        return None
