"""``approval``: wait — parked in the store, no worker held — for people to decide.

Who may decide, how many approvals are needed, whether the requester may approve their own
run, how long to wait and what a timeout means, and typed input the approver fills in (it
becomes the step's output). A reject fails the step, and the run rolls back.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from lockgate.core.context import ApprovalState, StepContext
from lockgate.core.params import ParamSpec
from lockgate.errors import StepError
from lockgate.steps.base import KindConfig, StepKind

#: How a settled approval step ended.
APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"


class Approvers(KindConfig):
    """Who may decide: anyone with one of ``roles``, or one of ``users``; empty: anyone."""

    roles: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)


class ApprovalConfig(KindConfig):
    """What to ask, of whom, and how long to wait."""

    message: str = Field("", description="What the approver is asked.")
    approvers: Approvers = Field(default_factory=Approvers)
    required: int = Field(1, ge=1, le=50, description="Approvals needed.")
    allow_self_approval: bool = Field(False, description="May the requester approve?")
    expires_after: float | None = Field(None, gt=0, description="Seconds to wait for decisions.")
    on_timeout: Literal["fail", "approve", "wait"] = "fail"
    input: dict[str, ParamSpec] = Field(
        default_factory=dict, description="Typed input the approver fills in."
    )


class ApprovalKind(StepKind):
    """Wait for decisions."""

    name = "approval"
    config = ApprovalConfig

    async def execute(self, ctx: StepContext, config: ApprovalConfig, value: Any) -> Any:
        """Ask once (the request is stored as rendered now), then act on the settled outcome:
        go on when approved, fail on a reject or (by policy) a timeout."""
        if ctx.noop:
            ctx.log.info("would wait for %d approval(s): %s", config.required, config.message)
            return {"approved_by": [], "comments": [], "input": {}, "noop": True}
        state = await ctx.approvals.state()
        if state is None:
            expires = None
            if config.expires_after is not None and config.on_timeout != "wait":
                expires = time.time() + config.expires_after
            ctx.approvals.ask(config.model_dump(mode="json"), expires)
            note = f": {config.message}" if config.message else ""
            ctx.log.info("waiting for %d approval(s)%s", config.required, note)
            ctx.park(expires)
            raise AssertionError("park raises")  # pragma: no cover
        expired = state.expires_at is not None and time.time() >= state.expires_at
        if state.outcome is None and expired:
            on_timeout = state.request.get("on_timeout", "fail")
            state = await ctx.approvals.expire(APPROVED if on_timeout == "approve" else TIMED_OUT)
        if state.outcome is None:
            ctx.park(state.expires_at)  # woken before it was settled: wait on
        return _result(ctx, state)


def _result(ctx: StepContext, state: ApprovalState) -> dict[str, Any]:
    """The step's output for a settled approval, or the error of a refused one."""
    if state.outcome == REJECTED:
        rejects = [d for d in state.decisions if d.decision == "reject"]
        comment = rejects[0].comment if rejects else None
        raise StepError(f"rejected by {state.settled_by}: {comment or 'no comment'}")
    if state.outcome == TIMED_OUT:
        after = state.request.get("expires_after")
        raise StepError(f"no decision within {after:g}s" if after else "no decision in time")
    if state.settled_by == "timeout":
        ctx.log.warning("no decision in time: approved by the timeout policy")
        return {"approved_by": [], "comments": [], "input": {}, "timed_out": True}
    approvals = [d for d in state.decisions if d.decision == "approve"]
    merged: dict[str, Any] = {}
    for d in approvals:
        merged.update(d.input or {})
    ctx.log.info("approved by %s", ", ".join(d.by for d in approvals))
    return {
        "approved_by": [d.by for d in approvals],
        "comments": [d.comment for d in approvals if d.comment],
        "input": merged,
    }
