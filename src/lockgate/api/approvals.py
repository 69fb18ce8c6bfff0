"""Approval routes: the steps waiting for decisions, and deciding."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from lockgate.api.deps import Approver, Lockgate, Operator, Strict, Viewer, position
from lockgate.core.cursor import encode_cursor

router = APIRouter(prefix="/api/v1")


class DecisionBody(Strict):
    """An approver's decision."""

    decision: Literal["approve", "reject"]
    step: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=2000)
    input: dict[str, Any] | None = None


@router.get("/approvals", summary="Approval steps waiting for decisions, oldest first")
def pending_approvals(
    caller: Viewer,
    lg: Lockgate,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    pending = lg.approvals(limit=limit, before=position(cursor, 3))
    last = pending[-1].approval if pending else None
    following = (
        encode_cursor(last.opened_at, last.run_id, last.step)
        if last is not None and len(pending) == limit
        else None
    )
    return {"approvals": [p.to_dict() for p in pending], "next": following}


@router.post("/runs/{run_id}/decisions", status_code=201, summary="Approve or reject")
def decide(run_id: str, body: DecisionBody, caller: Approver, lg: Lockgate) -> dict[str, Any]:
    record = lg.decide(
        run_id,
        body.decision,
        by=caller.name,
        roles=caller.roles,
        step=body.step,
        comment=body.comment,
        input=body.input,
    )
    return record.to_dict()


class Resolution(Strict):
    """What becomes of a step that failed for good and waits."""

    action: Literal["retry", "skip", "rollback"]
    comment: str | None = Field(None, max_length=2000)


@router.post(
    "/runs/{run_id}/resolve",
    status_code=201,
    summary="Retry, skip or roll back a failed step that waits for a decision (on_failure: ask)",
)
def resolve(run_id: str, body: Resolution, caller: Operator, lg: Lockgate) -> dict[str, Any]:
    return lg.resolve(
        run_id, body.action, by=caller.name, roles=caller.roles, comment=body.comment
    ).to_dict()
