"""Decisions on waiting steps: who may approve or reject an approval step, or retry, skip or
roll back a failed step that waits, and the checked write that records the decision."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from lockgate.access.identity import Identity
from lockgate.core.params import params_model, pydantic_problems
from lockgate.errors import Forbidden, InvalidState, LockgateError, ParamsError, RunNotFound
from lockgate.records import ApprovalRecord, DecisionResult
from lockgate.records.views import PendingApproval, policy_of
from lockgate.steps.approval import ApprovalConfig
from lockgate.store import Store
from lockgate.store.approvals import Decide, settled_conflict

#: Runs one bulk decision may name.
MAX_BULK = 1000


def requesters(requested_by: str | None, sources: Collection[str] = ()) -> set[str]:
    """The identities that started a run: its subject, and for a run a webhook of one of
    ``sources`` (the providers) started (``github:octocat``) the person who pushed, by their
    name at the provider."""
    if not requested_by:
        return set()
    source, sep, person = requested_by.partition(":")
    return {requested_by, person} if sep and person and source in sources else {requested_by}


def authorise(
    policy: ApprovalConfig,
    approval: ApprovalRecord,
    decision: str,
    by: str,
    roles: set[str],
    sources: Collection[str] = (),
) -> None:
    """Refuse (:class:`Forbidden`) a decision ``by`` may not make: not among the step's
    approvers, or approving a run they requested where self-approval is off."""
    allowed = policy.approvers
    if (
        (allowed.users or allowed.roles)
        and by not in allowed.users
        and not (roles & set(allowed.roles))
    ):
        who = ", ".join([*allowed.users, *(f"role {r}" for r in allowed.roles)])
        raise Forbidden(f"{by} may not decide on this step (allowed: {who})")
    if (
        decision == "approve"
        and not policy.allow_self_approval
        and by in requesters(approval.requested_by, sources)
    ):
        raise Forbidden(f"{by} requested run {approval.run_id} and may not approve it")


def deciding(identity: Identity) -> str:
    """The subject a decision is recorded as; refused for nobody (the App itself)."""
    if identity.subject is None:
        raise Forbidden("a decision is someone's: act as them (App.acting(subject, roles))")
    return identity.subject


def may_decide(pending: PendingApproval, identity: Identity, sources: Collection[str] = ()) -> bool:
    """Whether ``identity`` may approve the step now: named as an approver (or anyone, when
    none are named), not its requester unless self-approval is on, and not having decided
    it already."""
    by = identity.subject
    if by is None or any(d.by == by for d in pending.decisions):
        return False
    try:
        authorise(pending.policy, pending.approval, "approve", by, set(identity.roles), sources)
    except Forbidden:
        return False
    return True


def decide_many(
    store: Store,
    identity: Identity,
    run_ids: Sequence[str],
    decision: str,
    step: str | None,
    comment: str | None,
    input: Mapping[str, Any] | None,
    sources: Collection[str] = (),
) -> list[DecisionResult | LockgateError]:
    """One decision on each of ``run_ids`` as ``identity``, in one read and one
    transaction: each run's answer, or the error that refused it."""
    if decision not in ("approve", "reject"):
        raise ParamsError([f"decision must be approve or reject, not {decision!r}"])
    if not run_ids or len(run_ids) > MAX_BULK:
        raise ParamsError([f"runs: between 1 and {MAX_BULK} run ids ({len(run_ids)} given)"])
    by = deciding(identity)
    found = store.decision_targets(run_ids, step)
    answers: dict[str, DecisionResult | LockgateError] = {}
    groups: dict[str, list[tuple[str, str]]] = {}  # the same input goes in one op
    for run_id in dict.fromkeys(run_ids):
        try:
            name, data = _decision_for(
                run_id, found.get(run_id), decision, (by, set(identity.roles), sources), step, input
            )
        except LockgateError as exc:
            answers[run_id] = exc
            continue
        groups.setdefault(json.dumps(data, sort_keys=True), []).append((run_id, name))
    for key, items in groups.items():
        op = Decide(items, decision, by, comment, json.loads(key))
        for (run_id, _), result in zip(items, store.apply(op), strict=True):
            answers[run_id] = result
    return [answers[run_id] for run_id in run_ids]


def _decision_for(
    run_id: str,
    found: tuple[str, str | None, ApprovalRecord | None] | None,
    decision: str,
    who: tuple[str, set[str], Collection[str]],
    step: str | None,
    input: Mapping[str, Any] | None,
) -> tuple[str, Any]:
    """The step ``by`` decides on, with the input as the step will store it; or the error
    that refuses the decision before anything is written."""
    if found is None:
        raise RunNotFound(f"no run {run_id!r}")
    status, current, approval = found
    # Without a step: the run's latest approval (the waiting one, or the last settled).
    name = approval.step if approval is not None else step or current
    if name is None or approval is None:
        raise InvalidState(
            f"run {run_id} is {status}; it is not waiting for a decision"
            + (f" (step {name!r} asked for none)" if name else ""),
            details={"status": status},
        )
    if approval.outcome is not None:
        raise settled_conflict(approval)
    if approval.request.get("kind") == "failure":
        raise InvalidState(
            f"step {name!r} of run {run_id} failed and waits to be retried, skipped or "
            "rolled back, not approved: resolve it (lockgate runs resolve)",
            details={"choices": approval.request.get("choices")},
        )
    policy = policy_of(approval)
    authorise(policy, approval, decision, *who)
    if decision == "approve" and policy.input:
        model = params_model(f"{name}_input", policy.input)
        assert model is not None
        try:
            return name, model.model_validate(dict(input or {})).model_dump(mode="json")
        except ValidationError as exc:
            raise ParamsError(pydantic_problems(exc)) from exc
    if input:
        problem = (
            "input goes with an approval, not a reject"
            if policy.input
            else ("this step takes no input")
        )
        raise ParamsError([problem])
    return name, None


def resolve(
    store: Store,
    identity: Identity,
    run_id: str,
    action: str,
    comment: str | None,
    sources: Collection[str] = (),
) -> DecisionResult:
    """Retry, skip or roll back the failed step of ``run_id`` that waits, as ``identity``;
    the first decision settles it, a later one is refused with what was decided."""
    by = deciding(identity)
    run = store.get_run(run_id)
    waiting = store.get_approval(run_id)
    if waiting is None or waiting.request.get("kind") != "failure":
        raise InvalidState(
            f"run {run_id} is {run.status}; no failed step of it waits for a decision",
            details={"status": run.status},
        )
    if waiting.outcome is not None:
        raise settled_conflict(waiting)
    choices = list(waiting.request.get("choices") or [])
    if action not in choices:
        raise ParamsError([f"action: one of {', '.join(choices)} (not {action!r})"])
    authorise(policy_of(waiting), waiting, "approve", by, set(identity.roles), sources)
    result = store.apply(Decide([(run_id, waiting.step)], action, by, comment))[0]
    if isinstance(result, LockgateError):
        raise result
    return result


class Deciding:
    """The decisions half of the App: approve, reject and resolve as the identity it acts
    as, and read what waits for a decision."""

    store: Store
    identity: Identity
    #: The webhook providers: a run one of them started names the person who pushed.
    sources: frozenset[str] = frozenset()

    def decide(
        self,
        run_id: str,
        decision: str,
        *,
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Approve or reject a waiting approval step, as the subject this App acts as.

        The answer says whether this decision settled the step. Refused with a clear error
        when the step is not waiting or already settled (with the outcome and who settled
        it), when the subject may not decide (or approve their own run), when it already
        decided, or when the input does not fit what the step asks for (every problem).
        """
        result = self.decide_many([run_id], decision, step=step, comment=comment, input=input)
        if isinstance(result[0], LockgateError):
            raise result[0]
        return result[0]

    def decide_many(
        self,
        run_ids: Sequence[str],
        decision: str,
        *,
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | LockgateError]:
        """:meth:`decide` on each of ``run_ids`` (at most 1,000), in one read and one
        transaction: each run's answer, or the error that refused it (a refusal does not
        hold up the others)."""
        return decide_many(
            self.store, self.identity, run_ids, decision, step, comment, input, self.sources
        )

    def resolve(self, run_id: str, action: str, *, comment: str | None = None) -> DecisionResult:
        """Decide what becomes of a run's step that failed for good and waits (a pipeline or
        step with ``on_failure: ask``): ``retry`` it, ``skip`` it (if it is skippable) or
        ``rollback`` the run. The first decision settles it; any later one is refused with
        what was decided, by whom and when (409)."""
        return resolve(self.store, self.identity, run_id, action, comment, self.sources)

    def approvals(
        self, *, limit: int = 100, before: tuple[float, str, str] | None = None
    ) -> list[PendingApproval]:
        """Approval steps waiting for decisions, oldest first, each with its request as
        rendered and the decisions so far; page with ``before`` (see
        :meth:`Store.pending_approvals`)."""
        return [
            PendingApproval(run, approval, decided)
            for run, approval, decided in self.store.pending_approvals(before, limit)
        ]

    def approval(self, run_id: str, step: str | None = None) -> PendingApproval | None:
        """A run's latest approval request (or ``step``'s), with the decisions so far."""
        run = self.store.get_run(run_id)
        found = self.store.get_approval(run_id, step)
        if found is None:
            return None
        return PendingApproval(run, found, self.store.get_decisions(run_id, found.step))

    def may_decide(self, pending: PendingApproval) -> bool:
        """Whether the subject this App acts as may approve the step now."""
        return may_decide(pending, self.identity, self.sources)
