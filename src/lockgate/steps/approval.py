"""``approval``: wait — parked in the store, no worker held — for people to decide.

Who may decide, how many approvals are needed, whether the requester may approve their own
run, how long to wait and what a timeout means, and typed input the approver fills in (it
becomes the step's output). A reject fails the step, and the run rolls back.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from lockgate.core.context import StepContext
from lockgate.core.params import ParamSpec
from lockgate.errors import StepError
from lockgate.steps.base import KindConfig, StepKind


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
        """Go on once enough approvals are in; fail on a reject or (by policy) a timeout."""
        decisions = await ctx.fetch_decisions()
        for d in decisions:
            if d.decision == "reject":
                raise StepError(f"rejected by {d.by}: {d.comment or 'no comment'}")
        approvals = [d for d in decisions if d.decision == "approve"]
        if len(approvals) >= config.required:
            merged: dict[str, Any] = {}
            for d in approvals:
                merged.update(d.input or {})
            ctx.log.info("approved by %s", ", ".join(d.by for d in approvals))
            return {
                "approved_by": [d.by for d in approvals],
                "comments": [d.comment for d in approvals if d.comment],
                "input": merged,
            }
        if ctx.noop:
            ctx.log.info("would wait for %d approval(s): %s", config.required, config.message)
            return {"approved_by": [], "comments": [], "input": {}, "noop": True}
        deadline = ctx.wait_until
        if deadline is None and config.expires_after is not None:
            deadline = time.time() + config.expires_after
        if deadline is not None and time.time() >= deadline:
            if config.on_timeout == "fail":
                raise StepError(f"no decision within {config.expires_after:g}s")
            if config.on_timeout == "approve":
                ctx.log.warning("no decision in time: approved by the timeout policy")
                return {"approved_by": [], "comments": [], "input": {}, "timed_out": True}
            deadline = None  # wait as long as it takes
        missing = config.required - len(approvals)
        ctx.log.info("waiting for %d more approval(s) %s", missing, config.message)
        ctx.park(deadline)
        return value  # not reached: park raises
