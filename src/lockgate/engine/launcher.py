"""Starting runs: the checked write that creates one, and the hand-over to a local worker.

Everything that starts runs (App for people and REST, triggers, channels) goes through a
:class:`RunStarter`; triggers and channels see only that protocol, never the App.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

import jsonschema
from pydantic import BaseModel, TypeAdapter, ValidationError

from lockgate.core.ids import new_run_id
from lockgate.core.params import pydantic_problems
from lockgate.core.pipeline import Pipeline, split_name
from lockgate.core.registry import Registry
from lockgate.core.text import unstorable
from lockgate.engine.worker import Worker
from lockgate.errors import Forbidden, ParamsError, PipelineNotFound
from lockgate.observability import tracing
from lockgate.records import RunRecord
from lockgate.store import Store
from lockgate.store.audit import Audited, AuditEntry
from lockgate.store.ops import Op
from lockgate.store.runs import CreateRun

T = TypeVar("T")


class RunStarter(Protocol):
    """What a trigger or a channel needs to start runs: nothing else of the installation."""

    def prepare_run(
        self,
        name: str,
        params: Any = None,
        *,
        namespace: str = "default",
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> CreateRun:
        """The checked write that starts a run, to apply alone or inside another write;
        :class:`ParamsError` or :class:`PipelineNotFound` if it cannot start. With tracing
        on, the run's span is a child of ``traceparent`` (a message's), else of the
        current span (the request's)."""

    def adopt_created(self, op: CreateRun, record: RunRecord, created: bool) -> None:
        """After the write committed: hand the new run to the local worker it was leased to."""

    async def write(self, op: Op[T]) -> T:
        """Apply a write: through a running worker's group committer on this loop if there is
        one (it shares transactions with other writes), else in a thread on its own."""


class Launcher:
    """The :class:`RunStarter` of one installation: it checks params against the pipeline
    defined here (or, if only another process defines it, against its stored schema) and
    leases new runs straight to a local worker with room."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        reserved: Mapping[str, str] | None = None,
        workers: list[Worker] | None = None,
        tracer: tracing.Tracer = tracing.OFF,
    ) -> None:
        self.store = store
        self.registry = registry
        #: The App's tracing: a run's trace context is made with it.
        self.tracer = tracer
        #: Namespaces whose runs only their owning service starts, with the refusal's
        #: reason for everyone else (a channel's deployments start by pushing).
        self.reserved = dict(reserved or {})
        #: Workers made in this process; a run started here goes straight to one with room.
        self.workers: list[Worker] = workers if workers is not None else []

    def owning(self, namespace: str) -> Launcher:
        """A launcher for the service that owns ``namespace``: it may start runs there
        (and shares this one's workers)."""
        reserved = {ns: why for ns, why in self.reserved.items() if ns != namespace}
        return Launcher(
            self.store, self.registry, reserved=reserved, workers=self.workers, tracer=self.tracer
        )

    def prepare_run(
        self,
        name: str,
        params: Any = None,
        *,
        namespace: str = "default",
        requested_by: str | None = None,
        noop: bool = False,
        idempotency_key: str | None = None,
        version: str | None = None,
        rerun_of: str | None = None,
        context: Mapping[str, Any] | None = None,
        traceparent: str | None = None,
    ) -> CreateRun:
        """The checked write that starts a run, to apply alone or inside another write: of
        the pipeline's current version, or of ``version`` (a re-run of an older run).
        :class:`Forbidden` in a namespace reserved to a service (every face goes here)."""
        ns, pipeline_name = split_name(name, namespace)
        if ns in self.reserved:
            raise Forbidden(self.reserved[ns])
        # Text no store takes is refused before anything echoes it back.
        problems = unstorable(params, "params") + unstorable(context, "context")
        if problems:
            raise ParamsError(problems)
        if version is not None:
            version, steps, data = self._resolve_version(name, namespace, version, params)
        else:
            version, steps, data = self._resolve(name, namespace, params)
        if problems := unstorable(data, "params"):
            raise ParamsError(problems)
        local = next((w for w in self.workers if w.can_adopt(version)), None)
        return CreateRun(
            run_id=new_run_id(),
            namespace=ns,
            pipeline=pipeline_name,
            version=version,
            step_names=steps,
            params=data,
            noop=noop,
            requested_by=requested_by,
            idempotency_key=idempotency_key,
            claim_for=local.id if local is not None else None,
            lease_seconds=local.settings.lease_seconds if local is not None else 0.0,
            rerun_of=rerun_of,
            context=_checked_context(context),
            trace=self.tracer.new_run(traceparent),
        )

    def adopt_created(self, op: CreateRun, record: RunRecord, created: bool) -> None:
        """Hand a run created leased to a local worker over to that worker."""
        if not created or op.claim_for is None:
            return
        for worker in self.workers:
            if worker.id == op.claim_for:
                worker.adopt(record, op.step_names)

    def start(self, op: CreateRun, audit: AuditEntry | None = None) -> RunRecord:
        """Apply a prepared run (with its audit entry, in the same transaction; its target
        is the run) and hand it to a local worker: the run, or the first one of its key."""
        write: Op[tuple[RunRecord, bool]] = op
        if audit is not None:
            write = Audited(op, audit, lambda result: str(result[0].id))
        record, created = self.store.apply(write)
        self.adopt_created(op, record, created)
        return record

    async def write(self, op: Op[T]) -> T:
        """Apply a write: through a running worker's group committer on this loop if there is
        one (it shares transactions with other writes), else in a thread on its own."""
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            if worker.committing_on(loop):
                return await worker.committer.apply(op)
        return await asyncio.to_thread(self.store.apply, op)

    def _resolve(self, name: str, namespace: str, params: Any) -> tuple[str, list[str], Any]:
        """(version, step names, JSON params) of the pipeline's current version."""
        params = {} if params is None else params
        try:
            pipeline = self.registry.get(name, namespace)
        except PipelineNotFound:
            return self._resolve_stored(name, namespace, params)
        return self._checked(pipeline, params)

    @staticmethod
    def _checked(pipeline: Pipeline, params: Any) -> tuple[str, list[str], Any]:
        """(version, step names, JSON params) of ``pipeline``, its params checked."""
        params = {} if params is None else params
        data = params
        if pipeline.params_type is not None:
            unknown = _unknown_params(pipeline.params_type, params)
            adapter: TypeAdapter[Any] = TypeAdapter(pipeline.params_type)
            try:
                data = adapter.dump_python(adapter.validate_python(params), mode="json")
            except ValidationError as exc:
                others = pydantic_problems(exc, skip={"extra_forbidden"})
                raise ParamsError(unknown + others) from exc
            if unknown:
                raise ParamsError(unknown)
        return pipeline.version, [s.name for s in pipeline.steps], data

    def _resolve_version(
        self, name: str, namespace: str, version: str, params: Any
    ) -> tuple[str, list[str], Any]:
        """Like :meth:`_resolve`, for one recorded version of the pipeline."""
        params = {} if params is None else params
        here = self.registry.version(version)
        if here is not None:
            return self._checked(here, params)
        return self._resolve_stored(name, namespace, params, version)

    def _resolve_stored(
        self, name: str, namespace: str, params: Any, version: str | None = None
    ) -> tuple[str, list[str], Any]:
        ns, short = split_name(name, namespace)
        found = [p for p in self.store.pipeline_versions(short) if p.namespace == ns]
        if version is not None:
            found = [p for p in found if p.version == version]
        if not found:
            which = f"version {version[:12]} of " if version else ""
            # No database URL or path here: REST clients read this message too.
            raise PipelineNotFound(
                f"no {which}pipeline {ns}/{short} is registered: a server or worker that "
                "defines it registers it (from the CLI, --pipelines FILE runs it here)"
            )
        latest = found[0]
        schema = latest.definition.get("params")
        if schema:
            problems = []
            known = schema.get("properties")
            open_ended = schema.get("additionalProperties") is True
            if isinstance(params, Mapping) and known is not None and not open_ended:
                problems += _unknown(params, known)
            errors = sorted(
                jsonschema.Draft202012Validator(schema).iter_errors(params), key=lambda e: e.path
            )
            problems += [
                f"{'.'.join(map(str, e.path)) or '(params)'}: {e.message}"
                for e in errors
                if e.validator != "additionalProperties"  # said above, one per param
            ]
            if problems:
                raise ParamsError(problems)
        return latest.version, [s["name"] for s in latest.definition["steps"]], params


def _checked_context(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A run's first context values: a JSON object with text keys."""
    if context is None:
        return None
    if not isinstance(context, Mapping) or not all(isinstance(k, str) for k in context):
        raise ParamsError(["context: an object of named values"])
    try:
        return dict(json.loads(json.dumps(dict(context))))
    except (TypeError, ValueError) as exc:
        raise ParamsError([f"context: not JSON: {exc}"]) from exc


def _unknown_params(params_type: Any, params: Any) -> list[str]:
    """Params a pydantic model would silently drop (``-p enviroment=production``)."""
    if not (isinstance(params_type, type) and issubclass(params_type, BaseModel)):
        return []
    if params_type.model_config.get("extra") == "allow" or not isinstance(params, Mapping):
        return []  # kept on purpose
    known = [f.alias or name for name, f in params_type.model_fields.items()]
    return _unknown(params, [*known, *params_type.model_fields])


def _unknown(params: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    names = sorted(set(known))
    listed = ", ".join(names) or "none"
    return [f"{key}: unknown param (known: {listed})" for key in params if key not in names]
