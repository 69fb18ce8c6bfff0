"""What a step, hook or rollback receives while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lockgate.core.codec import decode
from lockgate.errors import Parked, StepCancelled, StepError
from lockgate.settings import Settings


@dataclass(frozen=True)
class ApprovalState:
    """An approval step's stored request, its decisions, and how it was settled."""

    request: Mapping[str, Any]
    expires_at: float | None
    #: ``approved``, ``rejected`` or ``timed_out``; ``None`` while open.
    outcome: str | None
    settled_by: str | None
    #: The recorded decisions (each with ``decision``, ``by``, ``comment``, ``input``).
    decisions: Sequence[Any] = ()


class ApprovalDesk(Protocol):
    """How an approval step asks for decisions and reads them (the engine provides it)."""

    async def state(self) -> ApprovalState | None:
        """The step's request and decisions; ``None`` before it asked."""

    def ask(self, request: Mapping[str, Any], expires_at: float | None) -> None:
        """Store ``request`` (rendered) with the checkpoint that parks the step."""

    async def expire(self, outcome: str) -> ApprovalState:
        """Settle by the timeout policy, unless a decision settled the step first."""


class _NoDesk:
    """Outside a run's steps (lifecycle hooks) there is nobody to ask."""

    async def state(self) -> ApprovalState | None:
        raise StepError("an approval can only be asked for by a step of a run")

    def ask(self, request: Mapping[str, Any], expires_at: float | None) -> None:
        raise StepError("an approval can only be asked for by a step of a run")

    async def expire(self, outcome: str) -> ApprovalState:
        raise StepError("an approval can only be asked for by a step of a run")


#: Receives ``(level, message)`` for each log line.
LogSink = Callable[[str, str], None]


class StepLogger:
    """A step's own log: lines go to the store (and the optional file mirror)."""

    #: Levels in order; lines below the logger's ``minimum`` are dropped.
    LEVELS = ("debug", "info", "warning", "error")

    def __init__(self, sink: LogSink, minimum: str = "debug") -> None:
        self._sink = sink
        self._floor = self.LEVELS.index(minimum) if minimum in self.LEVELS else 0

    def log(self, level: str, message: str, *args: object) -> None:
        """Write one line at ``level``; ``args`` are %-formatted into ``message``."""
        if level in self.LEVELS and self.LEVELS.index(level) < self._floor:
            return
        self._sink(level, message % args if args else message)

    def debug(self, message: str, *args: object) -> None:
        """Write a debug line."""
        self.log("debug", message, *args)

    def info(self, message: str, *args: object) -> None:
        """Write an info line."""
        self.log("info", message, *args)

    def warning(self, message: str, *args: object) -> None:
        """Write a warning line."""
        self.log("warning", message, *args)

    def error(self, message: str, *args: object) -> None:
        """Write an error line."""
        self.log("error", message, *args)


class Keeper(Protocol):
    """Writes what a step saves for its rollback, fenced by the run's lease."""

    def __call__(self, data: Any) -> None:
        """Write ``data`` now, blocking until it is committed."""

    async def commit(self, data: Any) -> None:
        """Write ``data`` and wait, on the worker's loop, until it is committed."""


class StepOutputs(Mapping[str, Any]):
    """The outputs of a run's completed steps, by step name (a live view): each decoded to
    the output type its step declares (a pydantic model, a dataclass...), as stored (JSON)
    where it declares none; :attr:`json` is every one as stored, for templates."""

    def __init__(self, stored: Mapping[str, Any], types: Mapping[str, Any]) -> None:
        self.json = stored
        self._types = types

    def __getitem__(self, name: str) -> Any:
        value = self.json[name]
        kind = self._types.get(name)
        if kind is None or kind is Any:
            return value
        return decode(kind, value, f"output of step {name!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.json)

    def __len__(self) -> int:
        return len(self.json)


@dataclass
class StepContext:
    """The run-time view one step body has of its run.

    ``bag`` is the run's shared context: hooks and steps may read and write it, and it is
    checkpointed with every step. ``save``/``load`` keep data for this step's rollback.
    """

    run_id: str
    pipeline: str
    step: str
    attempt: int
    params: Any
    bag: MutableMapping[str, Any]
    noop: bool
    log: StepLogger
    requested_by: str | None = None
    saved: Any = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started_at: float = field(default_factory=time.time)
    #: The deadline of this step's durable sleep, once it was set.
    wait_until: float | None = None
    #: Outputs of the run's completed steps, by step name: each decoded to the type its
    #: step declares (as stored, JSON, where it declares none); ``outputs.json`` as stored.
    outputs: StepOutputs = field(default_factory=lambda: StepOutputs({}, {}))
    #: The run's params as submitted (JSON), whatever the params type.
    raw_params: Any = None
    #: Named secrets for ``${secrets.NAME}``; their values are masked in every log line.
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: The worker's settings (step kinds read their options here).
    settings: Settings = field(default_factory=Settings)
    #: Where an approval step asks for decisions and reads them.
    approvals: ApprovalDesk = field(default_factory=_NoDesk)
    #: The error that made the run roll back (rollbacks and on-error handlers).
    error: BaseException | None = None
    #: The W3C ``traceparent`` of this step attempt's span, when tracing is on: hand it to
    #: the systems the step calls (``api`` steps send it, ``shell`` steps get
    #: ``TRACEPARENT``).
    traceparent: str | None = None
    #: Makes :meth:`save` and :meth:`asave` durable before they return (set by the
    #: engine: one small write).
    keeper: Keeper | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across re-runs of this step in this run: pass it to the systems you call."""
        return f"{self.run_id}/{self.step}"

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled; long sync steps should check it."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`StepCancelled` if the run was cancelled."""
        if self.cancelled:
            raise StepCancelled(f"run {self.run_id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Durably wait ``seconds``: the run is parked in the store and no worker holds it.

        The step's body runs again from the top when the time comes, and this call then
        returns at once: keep side effects after the sleep (or in a step of their own).
        One durable sleep per step.
        """
        if self.wait_until is None:
            self.sleep_until(time.time() + max(0.0, seconds))
        else:
            self.sleep_until(self.wait_until)

    def sleep_until(self, when: float) -> None:
        """Durably wait until UNIX time ``when`` (see :meth:`sleep`)."""
        if self.wait_until is None:
            self.wait_until = when
        if time.time() < self.wait_until:
            raise Parked(self.wait_until)

    def park(self, until: float | None) -> None:
        """Give up the worker until ``until`` (UNIX time) or, for ``None``, until woken
        (a decision on an approval). The body runs again from the top then."""
        self.wait_until = until
        raise Parked(until)

    def save(self, data: Any) -> None:
        """Keep JSON data for this step's rollback (the ids of what it created). Durable
        when this returns: a worker killed a moment later leaves it for the rollback."""
        self.saved = data
        if self.keeper is not None:
            self.keeper(data)

    async def asave(self, data: Any) -> None:
        """:meth:`save` for an ``async`` step: durable when awaited, and the worker's loop
        goes on meanwhile (a plain ``save`` there holds the loop for its write)."""
        self.saved = data
        if self.keeper is not None:
            await self.keeper.commit(data)

    def load(self, default: Any = None) -> Any:
        """The data this step saved with :meth:`save` (in a rollback, too)."""
        return default if self.saved is None else self.saved
