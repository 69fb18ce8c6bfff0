"""The approvals inbox: what the signed-in person may decide, and the decision forms."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from lockgate.console.core import (
    Approver,
    Operator,
    Viewer,
    back,
    console_router,
    input_fields,
    page,
    safe_next,
)
from lockgate.console.forms import values_from
from lockgate.records.views import PendingApproval

router = console_router()

#: Waiting approvals read for the inbox (oldest first).
INBOX = 200


@router.get("/approvals", response_class=HTMLResponse)
def inbox(request: Request, who: Viewer) -> Response:
    pending = who.client.approvals(limit=INBOX)
    mine = [p for p in pending if who.can(_role(p)) and who.may_decide(p)]
    others = [p for p in pending if p not in mine]
    return page(
        request,
        "approvals.html",
        title="Approvals",
        mine=mine,
        others=others,
        now=time.time(),
    )


def _role(pending: PendingApproval) -> str:
    """Approvals are an approver's; a failed step's fate is an operator's."""
    return "operator" if pending.approval.request.get("kind") == "failure" else "approver"


@router.post("/runs/{run_id}/resolve")
def resolve(run_id: str, act: Operator) -> Response:
    action = act.form.get("action", "")
    act.person.client.resolve(run_id, action, comment=act.form.get("comment"))
    return back(safe_next(act.form.get("back") or f"/runs/{run_id}"), f"decided: {action}")


@router.post("/runs/{run_id}/decisions")
def decide(run_id: str, act: Approver) -> Response:
    form = act.form
    decision = form.get("decision", "")
    # The input goes with an approval only (a reject's form may carry empty fields).
    pending = act.person.client.approval(run_id, form.get("step") or None)
    fields = input_fields(pending) if pending is not None and decision == "approve" else []
    inputs = values_from(fields, form, "input.")
    result = act.person.client.decide(
        run_id,
        decision,
        step=form.get("step") or None,
        comment=form.get("comment") or None,
        input=inputs or None,
    )
    if result.settled:
        note = f"{decision}d: the step is settled ({result.outcome})"
    else:
        note = f"{decision}d: more approvals are needed"
    return back(safe_next(form.get("back") or f"/runs/{run_id}"), note)
