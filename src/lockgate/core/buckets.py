"""Token buckets: how often something may happen per key (an address, a trigger)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

#: Keys kept at most; past it, those unused longest go first.
MAX_KEYS = 100_000


class Buckets:
    """Token buckets by key: ``rate`` per second, up to ``burst`` at once.

    At most ``max_keys`` keys are kept: past that, the key unused longest is forgotten
    (one whose bucket has refilled loses nothing: it starts full again). A flood of new
    keys cannot reset the budgets of the keys in use.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_KEYS) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        #: key -> (tokens, when), least recently used first.
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when ``key`` had a token (now spent), else the seconds until it will have."""
        now = time.monotonic() if now is None else now
        with self._lock:
            state = self._state
            tokens, at = state.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            while len(state) >= self.max_keys:
                state.popitem(last=False)  # the key unused longest
            if tokens >= 1:
                state[key] = (tokens - 1, now)
                return 0.0
            state[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._state)
