"""Views: plain data the faces show, built from records (REST, CLI and console alike)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from lockgate.records import (
    ApprovalRecord,
    AttemptRecord,
    DecisionRecord,
    ErrorRecord,
    RunRecord,
    StepRecord,
)
from lockgate.steps.approval import ApprovalConfig


@dataclass(frozen=True)
class RunView:
    """A run with its steps: what ``runs show`` and the API return."""

    run: RunRecord
    steps: list[StepRecord] = field(default_factory=list)
    #: Every execution of every step, in the order they started.
    attempts: list[AttemptRecord] = field(default_factory=list)
    #: Errors raised in the run, the cause first, with tracebacks.
    errors: list[ErrorRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the run, its steps each with its attempts, and its errors."""
        steps = [
            {**s.to_dict(), "attempts": [a.to_dict() for a in self.attempts if a.step == s.name]}
            for s in self.steps
        ]
        return {
            **self.run.to_dict(),
            "steps": steps,
            "errors": [e.to_dict() for e in self.errors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunView:
        """The view a ``to_dict`` (a REST answer) describes."""
        data = dict(data)
        steps, attempts = [], []
        for raw in data.pop("steps"):
            step = dict(raw)
            attempts += [AttemptRecord(**a) for a in step.pop("attempts", [])]
            steps.append(StepRecord(**step))
        errors = [ErrorRecord(**e) for e in data.pop("errors", [])]
        return cls(RunRecord(**data), steps, attempts, errors)


@dataclass(frozen=True)
class PendingApproval:
    """An approval step waiting for decisions: its request as rendered, and who decided."""

    run: RunRecord
    approval: ApprovalRecord
    decisions: list[DecisionRecord]

    @property
    def policy(self) -> ApprovalConfig:
        """The stored request as the approval step's config."""
        return policy_of(self.approval)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        policy = self.policy
        return {
            "run_id": self.run.id,
            "pipeline": f"{self.run.namespace}/{self.run.pipeline}",
            "step": self.approval.step,
            "requested_by": self.approval.requested_by,
            "message": policy.message,
            "required": policy.required,
            "approvals": sum(1 for d in self.decisions if d.decision == "approve"),
            "approvers": policy.approvers.model_dump(),
            "allow_self_approval": policy.allow_self_approval,
            "opened_at": self.approval.opened_at,
            "expires_at": self.approval.expires_at,
            "on_timeout": policy.on_timeout,
            "request": self.approval.request,
            "outcome": self.approval.outcome,
            "decisions": [d.to_dict() for d in self.decisions],
        }


def policy_of(approval: ApprovalRecord) -> ApprovalConfig:
    """An approval's stored (rendered) request as the step kind's config."""
    fields = ApprovalConfig.model_fields
    return ApprovalConfig.model_validate({k: v for k, v in approval.request.items() if k in fields})


@dataclass(frozen=True)
class StageManifest:
    """What a stage serves: the manifest's version, its hash (the ETag) and its JSON text."""

    channel: str
    stage: str
    version: int
    hash: str
    body: str

    @property
    def etag(self) -> str:
        """The HTTP entity tag of the manifest."""
        return f'"{self.hash}"'

    def data(self) -> Any:
        """The manifest as data."""
        return json.loads(self.body)


def canonical(manifest: Any) -> tuple[str, str]:
    """``(canonical JSON text, its SHA-256)``: equal manifests get equal hashes."""
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return body, hashlib.sha256(body.encode()).hexdigest()
