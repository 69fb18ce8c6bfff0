"""Approval routes: the steps waiting for decisions, and deciding."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from lockgate.access.decisions import MAX_BULK
from lockgate.api.deps import Approver, Operator, Strict, Viewer, position
from lockgate.api.errors import denied
from lockgate.core.cursor import encode_cursor
from lockgate.errors import LockgateError, NotFound

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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    pending = caller.client.approvals(limit=limit, before=position(cursor, 3))
    last = pending[-1].approval if pending else None
    following = (
        encode_cursor(last.opened_at, last.run_id, last.step)
        if last is not None and len(pending) == limit
        else None
    )
    return {"approvals": [p.to_dict() for p in pending], "next": following}


@router.get("/runs/{run_id}/approval", summary="A run's latest approval request and its decisions")
def run_approval(
    run_id: str,
    caller: Viewer,
    step: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    found = caller.client.approval(run_id, step)
    if found is None:
        raise NotFound(
            f"run {run_id} has asked for no approval" + (f" at {step!r}" if step else "")
        )
    return found.to_dict()


@router.post("/runs/{run_id}/decisions", status_code=201, summary="Approve or reject")
def decide(run_id: str, body: DecisionBody, caller: Approver) -> dict[str, Any]:
    record = caller.client.decide(
        run_id,
        body.decision,
        step=body.step,
        comment=body.comment,
        input=body.input,
    )
    return record.to_dict()


class BulkDecisionBody(Strict):
    """One approver's decision on many runs' waiting approval steps."""

    runs: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=MAX_BULK, description="The runs' ids (at most 1,000)."
    )
    decision: Literal["approve", "reject"]
    step: str | None = Field(
        None, max_length=200, description="The approval step (default: each run's waiting one)."
    )
    comment: str | None = Field(None, max_length=2000)
    input: dict[str, Any] | None = Field(None, description="The same input for every run.")


@router.post(
    "/decisions",
    summary="Approve or reject many runs' approval steps at once",
    description="One transaction for every run named. Each run gets its own answer: the "
    "decision (and whether it settled the step) or the error that refused it, as a "
    "decision on that run alone would have been refused; a refusal does not hold up the "
    "other runs.",
)
def decide_many(request: Request, body: BulkDecisionBody, caller: Approver) -> dict[str, Any]:
    answers = caller.client.decide_many(
        body.runs,
        body.decision,
        step=body.step,
        comment=body.comment,
        input=body.input,
    )
    results: list[dict[str, Any]] = []
    for run_id, answer in zip(body.runs, answers, strict=True):
        if isinstance(answer, LockgateError):
            if answer.http_status == 403:  # audited as a refusal, as a decision alone is
                denied(request, caller.name, answer.message)
            err = {"code": answer.code, "message": answer.message, "details": answer.details}
            results.append({"run_id": run_id, "error": err})
        else:
            results.append({**answer.to_dict(), "error": None})
    refused = sum(1 for a in answers if isinstance(a, LockgateError))
    return {"results": results, "decided": len(answers) - refused, "refused": refused}


class Resolution(Strict):
    """What becomes of a step that failed for good and waits."""

    action: Literal["retry", "skip", "rollback"]
    comment: str | None = Field(None, max_length=2000)


@router.post(
    "/runs/{run_id}/resolve",
    status_code=201,
    summary="Retry, skip or roll back a failed step that waits for a decision (on_failure: ask)",
)
def resolve(run_id: str, body: Resolution, caller: Operator) -> dict[str, Any]:
    return caller.client.resolve(run_id, body.action, comment=body.comment).to_dict()
