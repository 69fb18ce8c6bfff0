"""Rendering for the CLI: rich tables for people, JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Piped or redirected, tables keep every character: no terminal width to fit.
console = Console() if sys.stdout.isatty() else Console(width=100_000)
err_console = Console(stderr=True, soft_wrap=True)


class Output(StrEnum):
    """How read commands print."""

    table = "table"
    json = "json"


STATUS_STYLE = {
    "SUCCEEDED": "green",
    "COMPLETED": "green",
    "RUNNING": "cyan",
    "PENDING": "dim",
    "QUEUED": "dim",
    "ACTIVE": "cyan",
    "NOT_STARTED": "dim",
    "WAITING": "yellow",
    "RETRYING": "yellow",
    "ROLLING_BACK": "magenta",
    "ROLLED_BACK": "magenta",
    "FAILED": "red",
    "ROLLBACK_FAILED": "bold red",
    "CANCELLED": "red",
}


#: Terminal control sequences (colours, cursor moves, title changes) and other controls.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f\x9b]"
)


def printable(text: str) -> str:
    """``text`` without escape sequences or control characters: what a command printed
    must not drive the terminal it is shown in."""
    return _CONTROL.sub("", text)


def status_text(status: str) -> Text:
    """A status coloured by what it means."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(ts: float | None) -> str:
    """A UNIX time as local ``YYYY-MM-DD HH:MM:SS``."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: float | None, end: float | None) -> str:
    """``1.23s`` between two times, or ``-``."""
    if start is None or end is None:
        return "-"
    return f"{end - start:.2f}s"


def print_json(data: Any) -> None:
    """One JSON document on stdout (indented)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=True) + "\n")


def print_json_line(data: Any) -> None:
    """One JSON document on one line: a stream's item (JSON lines)."""
    sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i == 0)
    for row in rows:
        t.add_row(*[c if isinstance(c, Text) else str(c) for c in row])
    console.print(t)
