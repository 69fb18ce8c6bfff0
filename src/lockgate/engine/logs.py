"""Per-step log lines: masked, buffered for the store, optionally mirrored to files."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate.core.context import StepLogger

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """``name`` made safe as one path component (no separators, no leading dots)."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    return cleaned[:120] or "_"


def log_path(log_dir: Path, run_id: str, step: str) -> Path:
    """``<log_dir>/<run_id>/<step>.log``, guaranteed to stay inside ``log_dir``."""
    root = log_dir.resolve()
    path = (root / safe_name(run_id) / f"{safe_name(step)}.log").resolve()
    if root not in path.parents:
        raise ValueError(f"log path for step {step!r} escapes {root}")
    return path


class LogBuffer:
    """Collects a run's log lines until the next checkpoint or flush takes them."""

    def __init__(
        self, run_id: str, mask: Callable[[str], str], log_dir: Path | None = None
    ) -> None:
        self.run_id = run_id
        self._mask = mask
        self._log_dir = log_dir
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def logger(self, step: str) -> StepLogger:
        """A logger whose lines are recorded under ``step``."""
        return StepLogger(lambda level, message: self.add(step, level, message))

    def add(self, step: str, level: str, message: str) -> None:
        """Record one line (callable from any thread)."""
        row = {
            "run_id": self.run_id,
            "step": step,
            "level": level,
            "message": self._mask(str(message)),
            "at": time.time(),
        }
        with self._lock:
            self._rows.append(row)
        if self._log_dir is not None:
            path = log_path(self._log_dir, self.run_id, step)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"{row['at']:.3f} {level.upper():7} {row['message']}\n")

    def take(self) -> list[dict[str, Any]]:
        """Every line recorded since the last take."""
        with self._lock:
            rows, self._rows = self._rows, []
        return rows
