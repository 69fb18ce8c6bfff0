"""The composition root: settings -> store, registry, workers. Every face calls this."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from lockgate.access.decisions import Deciding
from lockgate.access.identity import NOBODY, Identity
from lockgate.access.sessions import Sessions
from lockgate.access.tokens import Tokens
from lockgate.channels.pipeline import NAMESPACE as CHANNEL_NAMESPACE
from lockgate.channels.service import Channels
from lockgate.core.masking import MIN_SECRET_LENGTH, Masker
from lockgate.core.pipeline import Pipeline
from lockgate.core.registry import Registry
from lockgate.core.statuses import RunStatus
from lockgate.engine.launcher import Launcher
from lockgate.engine.retention import Retention
from lockgate.engine.worker import Worker
from lockgate.errors import InvalidState, SettingsError
from lockgate.observability import tracing
from lockgate.observability.metrics import Metrics
from lockgate.observability.tracing import Tracer
from lockgate.records import (
    AuditRecord,
    ErrorRecord,
    EventRecord,
    LogRecord,
    PipelineRecord,
    RunRecord,
)
from lockgate.records.views import RunView
from lockgate.settings import Settings
from lockgate.store import Store, open_store
from lockgate.store.audit import Audited
from lockgate.store.crud import RecordTable
from lockgate.store.migrate import current, upgrade
from lockgate.store.ops import Op
from lockgate.store.runs import RegisterPipeline, RequestCancel
from lockgate.triggers.deliveries import Deliveries
from lockgate.triggers.pollers import Pollers
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.queues import Queues
from lockgate.triggers.schedules import Schedules
from lockgate.triggers.webhooks import WebhookTriggers

#: The services an App's view binds to the identity it acts as.
ACTING = (
    "tokens",
    "sessions",
    "webhooks",
    "schedules",
    "pollers",
    "queues",
    "deliveries",
    "channels",
    "retention",
)


class App(Deciding):
    """One lockgate installation: a database, the pipelines known here, and workers.

    The App acts as nobody: what it does is not audited, and it may not decide on an
    approval. :meth:`acting` gives a view of it acting as someone, which is what every face
    calls (the :class:`lockgate.client.Client` protocol, in process).
    """

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
        #: Who this App acts as (nobody; see :meth:`acting`).
        self.identity: Identity = NOBODY
        self.sources = frozenset(PROVIDERS)
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
        self.webhooks = WebhookTriggers(self.store)
        self.schedules = Schedules(self.store, self.launcher)
        self.pollers = Pollers(self.store, self.launcher, self.settings.secrets)
        self.queues = Queues(
            self.store,
            self.launcher,
            self.settings.secrets,
            max_message_bytes=self.settings.queue_max_message_bytes,
            tracer=self.tracer,
        )
        owners: list[RecordTable[Any]] = [
            self.webhooks.rows,
            self.schedules.rows,
            self.pollers.rows,
            self.queues.rows,
        ]
        #: What every trigger fired, and the intake of webhook deliveries.
        self.deliveries = Deliveries(
            self.store, self.launcher, self.settings, self.webhooks.cache, owners
        )
        self.deliveries.redeliverers["queue"] = self.queues.redeliver
        self.channels = Channels(self.store, self.registry, self.launcher.owning(CHANNEL_NAMESPACE))
        self.metrics = Metrics(self.store, lambda: sum(w.active for w in self.launcher.workers))
        self.retention = Retention(self.store, self.settings, self.metrics)
        for p in pipelines:
            self.registry.add(p)

    def acting(self, subject: str | Identity, roles: Iterable[str] = ()) -> App:
        """This App acting as ``subject`` holding ``roles``: what it writes is audited as
        that subject, the runs it starts are requested by it, and its decisions are
        authorised against its roles. The view shares everything else with this App (close
        this one, not the view)."""
        identity = subject if isinstance(subject, Identity) else Identity.of(subject, roles)
        view = copy.copy(self)
        view.identity = identity
        for name in ACTING:
            setattr(view, name, getattr(self, name).acting(identity))
        return view

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
        noop: bool = False,
        idempotency_key: str | None = None,
        context: Mapping[str, Any] | None = None,
        traceparent: str | None = None,
    ) -> RunRecord:
        """Start a run of the current version of ``name``, requested by the subject this App
        acts as (and audited in the same transaction); refused with every param problem.

        With ``idempotency_key``, starting twice returns the first run. ``context`` gives
        the run's context bag (``ctx.context``) its first values; ``traceparent`` (a W3C
        header) makes the run's trace a child of the caller's.
        """
        op = self.launcher.prepare_run(
            name,
            params,
            namespace=namespace,
            requested_by=self.identity.subject,
            noop=noop,
            idempotency_key=idempotency_key,
            context=context,
            traceparent=traceparent,
        )
        details = {"pipeline": f"{op.namespace}/{op.pipeline}"}
        return self.launcher.start(op, self.identity.audit("run.start", None, details))

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

    def prune(self, *, dry_run: bool = False) -> dict[str, int]:
        """Delete the finished runs past their keep time now (``dry_run``: count them); the
        number of each status that went."""
        return self.retention.prune(dry_run=dry_run)

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

    def rerun(self, run_id: str, *, latest: bool = False) -> RunRecord:
        """Start a new run with the params of finished run ``run_id``: on the same pipeline
        version (the default: the same steps as before), or with ``latest`` on the newest
        one. The new run records what it re-runs (``rerun_of``) and who asked (audited in
        the same transaction). :class:`InvalidState` for a run that has not finished."""
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
            requested_by=self.identity.subject,
            version=None if latest else old.version,
            rerun_of=old.id,
        )
        details = {"of": old.id, "version": "latest" if latest else "same"}
        return self.launcher.start(op, self.identity.audit("run.rerun", None, details))

    def cancel_run(self, run_id: str) -> RunRecord:
        """Ask a run to stop its current step and roll back (audited in the same
        transaction)."""
        op: Op[str] = RequestCancel(run_id, self.identity.subject)
        audit = self.identity.audit("run.cancel", run_id)
        self.store.apply(Audited(op, audit) if audit is not None else op)
        return self.store.get_run(run_id)

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
