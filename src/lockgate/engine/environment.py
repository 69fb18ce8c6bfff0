"""What a run's execution needs of the worker that drives it, and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockgate.core.masking import Masker
from lockgate.engine.committer import Committer
from lockgate.observability.metrics import Metrics
from lockgate.observability.tracing import Tracer
from lockgate.settings import Settings
from lockgate.store import Store


@dataclass(frozen=True)
class Environment:
    """A run's surroundings while a worker holds its lease.

    The execution reads through ``store``, writes through ``committer`` (group commit, every
    write fenced by the lease token), records attempts as ``worker_id``'s, masks secrets
    with ``mask``, and asks ``wake_at`` for a look at due work when a local wait ends.
    """

    worker_id: str
    store: Store
    committer: Committer
    settings: Settings
    mask: Masker
    metrics: Metrics | None
    #: A structlog logger bound to the worker.
    log: Any
    wake_at: Callable[[float], None]
    #: Called when a write found the database out of reach: the worker waits for it.
    unreachable: Callable[[], None]
    #: Seconds left of the lease this worker last knew it holds on a run (UNIX clock).
    lease_left: Callable[[str], float]
    #: The App's tracing (a run's spans).
    tracer: Tracer
