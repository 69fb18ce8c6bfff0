"""Token buckets: how often something may happen per key (an address, a trigger)."""

from __future__ import annotations

import threading
import time


class Buckets:
    """Token buckets by key: ``rate`` per second, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when ``key`` had a token (now spent), else the seconds until it will have."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if len(self._state) > 100_000:  # forget idle keys rather than grow forever
                self._state.clear()
            if tokens >= 1:
                self._state[key] = (tokens - 1, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1 - tokens) / self.rate
