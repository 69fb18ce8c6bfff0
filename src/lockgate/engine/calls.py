"""What the engine does with user code and its errors: call it, describe what it raised."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lockgate.core.codec import decode, type_name
from lockgate.core.context import StepContext
from lockgate.core.functions import arity, call
from lockgate.core.step import Step
from lockgate.errors import LeaseExpired, MissingOutput, StepError, StepTimeout


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


def lease_check(run_id: str, lease_left: Callable[[str], float], step: Step) -> Callable[[], None]:
    """A check that the lease this worker last knew of on ``run_id`` has not run out (else
    :class:`LeaseExpired`: the step's body must not start)."""

    def check() -> None:
        if lease_left(run_id) <= 0:
            raise LeaseExpired(f"run {run_id}: the lease ran out before step {step.name!r} started")

    return check


async def run_body(
    step: Step, ctx: StepContext, value: Any, before: Callable[[], None] | None = None
) -> Any:
    """Run ``step``'s pre-hooks, body (``before`` it: the lease check) and post-hooks on
    ``value``, within the step's timeout (:class:`StepTimeout` past it)."""

    async def body() -> Any:
        current = value
        for hook in step.pre_hooks:
            changed = await invoke(hook, ctx, current)
            current = current if changed is None else changed
        # The lease is checked once more right before the body, in the body's own thread
        # for a plain function: a host frozen since the check at the attempt's start must
        # not run a body another host may have run meanwhile.
        out = await invoke(step.execute, ctx, current, before=before)
        for hook in step.post_hooks:
            changed = await invoke(hook, ctx, out)
            out = out if changed is None else changed
        if step.output_type is not None and out is None:
            raise MissingOutput(
                f"step {step.name!r} declares output {type_name(step.output_type)} but "
                "returned None; return a value"
            )
        return out

    if step.timeout is None:
        return await body()  # no task of its own: a step costs one less loop turn
    deadline = asyncio.timeout(step.timeout)
    try:
        async with deadline:
            return await body()
    except TimeoutError:
        if not deadline.expired():
            raise  # the step's own TimeoutError, not ours
        ctx.cancel_event.set()
        raise StepTimeout(f"step {step.name!r} timed out after {step.timeout:g}s") from None
