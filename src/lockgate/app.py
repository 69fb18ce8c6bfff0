"""The composition root: settings -> store, registry, workers. Every face calls this."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from lockgate.access.sessions import Sessions
from lockgate.access.tokens import Tokens
from lockgate.channels.pipeline import NAMESPACE as CHANNEL_NAMESPACE
from lockgate.channels.service import Channels
from lockgate.core.masking import MIN_SECRET_LENGTH, Masker
from lockgate.core.params import params_model, pydantic_problems
from lockgate.core.pipeline import Pipeline
from lockgate.core.registry import Registry
from lockgate.core.statuses import RunStatus
from lockgate.engine.launcher import Launcher
from lockgate.engine.worker import Worker
from lockgate.errors import (
    Forbidden,
    InvalidState,
    LockgateError,
    NotFound,
    ParamsError,
    RunNotFound,
    SettingsError,
)
from lockgate.observability import tracing
from lockgate.observability.metrics import Metrics
from lockgate.observability.tracing import Tracer
from lockgate.records import (
    ApprovalRecord,
    AuditRecord,
    DecisionResult,
    DeliveryRecord,
    ErrorRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
)
from lockgate.records.views import PendingApproval, RunView, policy_of
from lockgate.server.retention import Retention
from lockgate.settings import Settings
from lockgate.steps.approval import ApprovalConfig
from lockgate.store import Store, open_store
from lockgate.store.approvals import Decide, settled_conflict
from lockgate.store.audit import Audited, AuditEntry
from lockgate.store.migrate import current, upgrade
from lockgate.store.ops import Op
from lockgate.store.runs import CreateRun, RegisterPipeline, RequestCancel
from lockgate.triggers.pollers import Pollers
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.queues import Queues
from lockgate.triggers.schedules import Schedules
from lockgate.triggers.webhooks import Webhooks

#: Runs one bulk decision may name.
MAX_BULK = 1000

T = TypeVar("T")


def requesters(requested_by: str | None) -> set[str]:
    """The identities that started a run: its subject, and for a run a webhook started
    (``github:octocat``) the person who pushed, by their name at the provider."""
    if not requested_by:
        return set()
    source, sep, person = requested_by.partition(":")
    return {requested_by, person} if sep and person and source in PROVIDERS else {requested_by}


def _authorise(
    policy: ApprovalConfig, approval: ApprovalRecord, decision: str, by: str, roles: set[str]
) -> None:
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
        and by in requesters(approval.requested_by)
    ):
        raise Forbidden(f"{by} requested run {approval.run_id} and may not approve it")


class App:
    """One lockgate installation: a database, the pipelines known here, and workers."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pipelines: Iterable[Pipeline] = (),
        create_database: bool = True,
        tracer: Tracer | None = None,
    ):
        """``create_database=False``: a SQLite file that does not exist is an error
        (:class:`DatabaseMissing`) rather than a new, empty database. ``tracer``: where its
        spans go (:func:`lockgate.observability.tracing.for_provider`); by default, as the
        ``OTEL_*`` environment says (off when it says nothing); closed with the App."""
        self.settings = settings or Settings()
        self.store: Store = open_store(
            self.settings.database_url,
            sqlite_synchronous=self.settings.sqlite_synchronous,
            create=create_database,
            stuck_after=self.settings.lease_seconds,
        )
        self.registry = Registry()
        short = sorted(n for n, v in self.settings.secrets.items() if len(v) < MIN_SECRET_LENGTH)
        if short:
            self.store.close()
            raise SettingsError(
                f"secret(s) {', '.join(short)} shorter than {MIN_SECRET_LENGTH} characters: "
                "too short to be masked in logs without mangling them; use longer values"
            )
        self.mask = Masker(self.settings.secrets.values())
        self.tracer = tracer if tracer is not None else tracing.from_environment(os.environ)
        self._own_tracer = tracer is None
        self.tokens = Tokens(self.store)
        self.sessions = Sessions(self.store, self.tokens, self.settings)
        #: Starts runs for people, triggers and channels alike (and knows the local workers).
        # A channel's deployments start by pushing, through the channel's rules and turn:
        # no face, trigger or caller but the channel service starts them.
        refusal = "channel pipelines are started by pushing to the channel, not here"
        self.launcher = Launcher(
            self.store, self.registry, reserved={CHANNEL_NAMESPACE: refusal}, tracer=self.tracer
        )
        self.webhooks = Webhooks(self.store, self.launcher, self.settings)
        self.schedules = Schedules(self.store, self.launcher)
        self.pollers = Pollers(self.store, self.launcher, self.settings.secrets)
        self.queues = Queues(
            self.store,
            self.launcher,
            self.settings.secrets,
            max_message_bytes=self.settings.queue_max_message_bytes,
            tracer=self.tracer,
        )
        self.webhooks.redeliverers["queue"] = self.queues.redeliver
        self.channels = Channels(self.store, self.registry, self.launcher.owning(CHANNEL_NAMESPACE))
        self.metrics = Metrics(self.store, lambda: sum(w.active for w in self.launcher.workers))
        self.retention = Retention(self.store, self.settings, self.metrics)
        for p in pipelines:
            self.registry.add(p)

    # -- set-up ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent; safe from many processes)."""
        upgrade(self.store)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (``None`` before the first upgrade)."""
        return current(self.store)

    def register(self, *pipelines: Pipeline) -> None:
        """Make pipelines runnable here and visible to every process on the database."""
        for p in pipelines:
            self.registry.add(p)
            self.store.apply(RegisterPipeline(p.version, p.namespace, p.name, p.describe()))

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        params: Mapping[str, Any] | Any = None,
        *,
        namespace: str = "default",
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        actor: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Start a run of the current version of ``name``; refused with every param problem.

        With ``idempotency_key``, starting twice returns the first run. With ``actor`` the
        start is audited in the same transaction. ``context`` gives the run's context bag
        (``ctx.context``) its first values.
        """
        op = self.launcher.prepare_run(
            name,
            params,
            namespace=namespace,
            requested_by=requested_by,
            noop=noop,
            idempotency_key=idempotency_key,
            context=context,
        )
        details = {"pipeline": f"{op.namespace}/{op.pipeline}"}
        audit = AuditEntry(actor, "run.start", None, details) if actor is not None else None
        return self.launcher.start(op, audit)

    def prepare_run(
        self,
        name: str,
        params: Mapping[str, Any] | Any = None,
        *,
        namespace: str = "default",
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> CreateRun:
        """The checked write that starts a run, to apply alone or inside another write."""
        return self.launcher.prepare_run(
            name,
            params,
            namespace=namespace,
            requested_by=requested_by,
            noop=noop,
            idempotency_key=idempotency_key,
            traceparent=traceparent,
        )

    async def write(self, op: Op[T]) -> T:
        """Apply a write: through a running worker's group committer on this loop if there is
        one (it shares transactions with other writes), else in a thread on its own."""
        return await self.launcher.write(op)

    def run_record(self, run_id: str) -> RunRecord:
        """A run alone (no steps); :class:`RunNotFound` if unknown."""
        return self._shown(self.store.get_run(run_id))

    def _shown(self, run: RunRecord) -> RunRecord:
        """A run as every face shows it: secrets in its params masked (steps' outputs, the
        context bag, errors and logs are masked as they are stored)."""
        if not self.mask.active:
            return run
        return dataclasses.replace(run, params=self.mask.data(run.params))

    def check_database(self) -> None:
        """Raise the store's error if the database cannot answer (health checks)."""
        self.store.count_active()

    def audit_log(self, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Audit entries after id ``after``, oldest first."""
        return self.store.get_audit(after, limit)

    def get_run(self, run_id: str) -> RunView:
        """A run and its steps, secrets masked in its params and its steps' inputs;
        :class:`RunNotFound` if unknown."""
        run, steps, attempts, errors = self.store.run_view(run_id)
        if self.mask.active:
            steps = [dataclasses.replace(st, input=self.mask.data(st.input)) for st in steps]
        return RunView(self._shown(run), steps, attempts, errors)

    def list_runs(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        namespace: str | None = None,
        requested_by: str | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest runs first, filtered; ``before`` is the ``(created_at, id)`` of the last
        run of the previous page; secrets in params masked."""
        found = self.store.list_runs(
            status=status,
            pipeline=pipeline,
            namespace=namespace,
            requested_by=requested_by,
            since=since,
            before=before,
            limit=limit,
        )
        return [self._shown(run) for run in found]

    def events(self, run_id: str, after: int = 0) -> list[EventRecord]:
        """A run's events, oldest first."""
        self.store.get_run(run_id)
        return self.store.get_events(run_id, after)

    def errors(self, run_id: str) -> list[ErrorRecord]:
        """Errors raised in a run."""
        return self.store.get_errors(run_id)

    def logs(self, run_id: str, step: str | None = None, after: int = 0) -> list[LogRecord]:
        """Log lines of a run, or one step of it."""
        self.store.get_run(run_id)
        return self.store.get_logs(run_id, step, after)

    def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
        requested_by: str | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        """Start a new run with the params of finished run ``run_id``: on the same pipeline
        version (the default: the same steps as before), or with ``latest`` on the newest
        one. The new run records what it re-runs (``rerun_of``); with ``actor``, audited in
        the same transaction. :class:`InvalidState` for a run that has not finished."""
        old = self.store.get_run(run_id)
        if not RunStatus(old.status).terminal:
            raise InvalidState(
                f"run {run_id} is {old.status}; only a finished run can be run again",
                details={"status": old.status},
            )
        if old.namespace == CHANNEL_NAMESPACE:
            raise InvalidState(f"run {run_id} is a channel's deployment: push again instead")
        op = self.launcher.prepare_run(
            old.pipeline,
            old.params,
            namespace=old.namespace,
            requested_by=requested_by,
            version=None if latest else old.version,
            rerun_of=old.id,
        )
        details = {"of": old.id, "version": "latest" if latest else "same"}
        audit = AuditEntry(actor, "run.rerun", None, details) if actor is not None else None
        return self.launcher.start(op, audit)

    def cancel_run(self, run_id: str, *, by: str | None = None) -> RunRecord:
        """Ask a run to stop its current step and roll back (audited as ``by``, in the same
        transaction)."""
        op: Op[str] = RequestCancel(run_id, by)
        if by is not None:
            op = Audited(op, AuditEntry(by, "run.cancel", run_id))
        self.store.apply(op)
        return self.store.get_run(run_id)

    # -- approvals -------------------------------------------------------------------------

    def decide(
        self,
        run_id: str,
        decision: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Approve or reject a waiting approval step, as the subject ``by`` holding ``roles``.

        The answer says whether this decision settled the step. Refused with a clear error
        when the step is not waiting or already settled (with the outcome and who settled
        it), when ``by`` may not decide (or approve their own run), when ``by`` already
        decided, or when the input does not fit what the step asks for (every problem).
        """
        result = self.decide_many(
            [run_id], decision, by=by, roles=roles, step=step, comment=comment, input=input
        )[0]
        if isinstance(result, LockgateError):
            raise result
        return result

    def decide_many(
        self,
        run_ids: Sequence[str],
        decision: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        step: str | None = None,
        comment: str | None = None,
        input: Mapping[str, Any] | None = None,
    ) -> list[DecisionResult | LockgateError]:
        """:meth:`decide` on each of ``run_ids`` (at most :data:`MAX_BULK`) as one
        subject, in one read and one transaction: each run's answer, or the error that
        refused it (a refusal does not hold up the others)."""
        if decision not in ("approve", "reject"):
            raise ParamsError([f"decision must be approve or reject, not {decision!r}"])
        if not run_ids or len(run_ids) > MAX_BULK:
            raise ParamsError([f"runs: between 1 and {MAX_BULK} run ids ({len(run_ids)} given)"])
        held = set(roles)
        found = self.store.decision_targets(run_ids, step)
        answers: dict[str, DecisionResult | LockgateError] = {}
        groups: dict[str, list[tuple[str, str]]] = {}  # the same input goes in one op
        for run_id in dict.fromkeys(run_ids):
            try:
                name, data = self._decision_for(
                    run_id, found.get(run_id), decision, by, held, step, input
                )
            except LockgateError as exc:
                answers[run_id] = exc
                continue
            groups.setdefault(json.dumps(data, sort_keys=True), []).append((run_id, name))
        for key, items in groups.items():
            op = Decide(items, decision, by, comment, json.loads(key))
            for (run_id, _), result in zip(items, self.store.apply(op), strict=True):
                answers[run_id] = result
        return [answers[run_id] for run_id in run_ids]

    def _decision_for(
        self,
        run_id: str,
        found: tuple[str, str | None, ApprovalRecord | None] | None,
        decision: str,
        by: str,
        roles: set[str],
        step: str | None,
        input: Mapping[str, Any] | None,
    ) -> tuple[str, Any]:
        """The step ``by`` decides on, with the input as the step will store it; or the
        error that refuses the decision before anything is written."""
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
        _authorise(policy, approval, decision, by, roles)
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
        self,
        run_id: str,
        action: str,
        *,
        by: str,
        roles: Iterable[str] = (),
        comment: str | None = None,
    ) -> DecisionResult:
        """Decide what becomes of a run's step that failed for good and waits (a pipeline or
        step with ``on_failure: ask``): ``retry`` it, ``skip`` it (if it is skippable) or
        ``rollback`` the run. The first decision settles it; any later one is refused with
        what was decided, by whom and when (409)."""
        run = self.store.get_run(run_id)
        waiting = self.store.get_approval(run_id)
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
        _authorise(policy_of(waiting), waiting, "approve", by, set(roles))
        result = self.store.apply(Decide([(run_id, waiting.step)], action, by, comment))[0]
        if isinstance(result, LockgateError):
            raise result
        return result

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

    def may_decide(self, pending: PendingApproval, by: str, roles: Iterable[str]) -> bool:
        """Whether ``by`` (holding ``roles``) may approve the step now: named as an approver
        (or anyone, when none are named), not its requester unless self-approval is on,
        and not having decided it already."""
        if any(d.by == by for d in pending.decisions):
            return False
        try:
            _authorise(pending.policy, pending.approval, "approve", by, set(roles))
        except Forbidden:
            return False
        return True

    def deliveries(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """The firings of a webhook trigger, a schedule or a poller, newest first (page with
        ``before``, the last delivery id seen)."""
        if not any(
            table.find(trigger_id) is not None
            for table in (
                self.webhooks.triggers,
                self.schedules.store,
                self.pollers.store,
                self.queues.store,
            )
        ):
            raise NotFound(f"no trigger, schedule, poller or queue {trigger_id!r}")
        return self.webhooks.triggers.deliveries(trigger_id, limit, before)

    def pipelines(self) -> list[PipelineRecord]:
        """Registered pipeline versions in the database, newest first."""
        return self.store.pipeline_versions()

    def pipeline_versions(self, name: str) -> list[PipelineRecord]:
        """The registered versions of pipeline ``name``, newest first."""
        return self.store.pipeline_versions(name)

    # -- workers ---------------------------------------------------------------------------

    def worker(self, **overrides: Any) -> Worker:
        """A worker for the pipelines registered here."""
        settings = self.settings.with_(**overrides) if overrides else self.settings
        worker = Worker(
            self.store,
            self.registry,
            settings,
            mask=self.mask,
            metrics=self.metrics,
            tracer=self.tracer,
        )
        self.launcher.workers.append(worker)
        return worker

    async def wait(self, run_id: str, timeout: float = 60.0, poll: float = 0.01) -> RunRecord:
        """Wait until the run has finished; :class:`TimeoutError` after ``timeout`` seconds
        (a run parked at an approval or a long sleep is not finished: it times out)."""
        deadline = time.monotonic() + timeout
        while True:
            run = await asyncio.to_thread(self.store.get_run, run_id)
            if RunStatus(run.status).terminal:
                return self._shown(run)
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout:g}s")
            await asyncio.sleep(poll)

    async def execute_async(
        self, name: str, params: Any = None, *, timeout: float = 60.0, **options: Any
    ) -> RunRecord:
        """Start a run and drive it with an in-process worker until it finishes."""
        worker = self.worker()
        await worker.start()
        try:
            run = await asyncio.to_thread(self.start_run, name, params, **options)
            worker.wake()
            return await self.wait(run.id, timeout)
        finally:
            await worker.stop()

    def execute(
        self, name: str, params: Any = None, *, timeout: float = 60.0, **options: Any
    ) -> RunRecord:
        """Synchronous :meth:`execute_async`: run a pipeline in-process, return the run."""
        return asyncio.run(self.execute_async(name, params, timeout=timeout, **options))

    def close(self) -> None:
        """Close the database connections, and the tracing this App made (exporting what it
        holds)."""
        self.store.close()
        if self._own_tracer:
            self.tracer.close()
