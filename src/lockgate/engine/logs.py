"""Per-step log lines: masked, buffered for the store, optionally mirrored to files."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.core.context import StepLogger
from lockgate.core.text import clean

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


#: One log line is cut at this many characters, with a marker (a shell step cuts its output
#: lines shorter, at 64 KiB).
MAX_MESSAGE_CHARS = 128 * 1024


@dataclass(frozen=True)
class LogBudget:
    """How much one step may log (per execution); past it, one marker, then nothing."""

    lines: int = 100_000
    bytes: int = 16 * 1024 * 1024


class LogBuffer:
    """Collects a run's log lines until the next checkpoint or flush takes them."""

    def __init__(
        self,
        run_id: str,
        mask: Callable[[str], str],
        log_dir: Path | None = None,
        budget: LogBudget | None = None,
    ) -> None:
        self.run_id = run_id
        self._mask = mask
        self._log_dir = log_dir
        self._budget = budget or LogBudget()
        #: Per step: (lines, bytes) logged so far, or None once over budget.
        self._spent: dict[str, tuple[int, int] | None] = {}
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def logger(self, step: str, minimum: str = "debug") -> StepLogger:
        """A logger whose lines (from ``minimum`` up) are recorded under ``step``."""
        return StepLogger(lambda level, message: self.add(step, level, message), minimum)

    def add(self, step: str, level: str, message: str) -> None:
        """Record one line (callable from any thread); a step over its budget gets one
        marker line, then its lines are dropped."""
        text = str(message)
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + f" [line cut at {MAX_MESSAGE_CHARS} characters]"
        text = clean(self._mask(text))  # a lone surrogate or NUL reads back as U+FFFD
        with self._lock:
            spent = self._spent.get(step, (0, 0))
            if spent is None:
                return
            lines, size = spent[0] + 1, spent[1] + len(text)
            if lines > self._budget.lines or size > self._budget.bytes:
                self._spent[step] = None
                level, text = (
                    "warning",
                    (
                        f"log truncated: this step logged more than {self._budget.lines} lines "
                        f"or {self._budget.bytes} bytes; later lines are dropped"
                    ),
                )
            else:
                self._spent[step] = (lines, size)
            row = {
                "run_id": self.run_id,
                "step": step,
                "level": level,
                "message": text,
                "at": time.time(),
            }
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
