"""Retry policies: how many attempts, how long to wait, which errors."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """Retry a failed step with exponential backoff and jitter.

    The wait between attempts is durable: the run is parked in the store with a wake-up time,
    so no worker slot is held while it waits.
    """

    attempts: int = 1
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0
    jitter: float = 0.1
    #: Exception classes worth retrying; others fail at once.
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")
        if self.backoff < 0 or self.multiplier < 1 or self.jitter < 0:
            raise ValueError("Retry needs backoff >= 0, multiplier >= 1 and jitter >= 0")

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a failure of attempt number ``attempt`` (1-based) earns another try."""
        return attempt < self.attempts and isinstance(error, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        base = min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter)) if base else 0.0

    def describe(self) -> dict[str, object]:
        """The policy as plain data (part of a pipeline's version)."""
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "multiplier": self.multiplier,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "on": [f"{e.__module__}.{e.__qualname__}" for e in self.on],
        }
