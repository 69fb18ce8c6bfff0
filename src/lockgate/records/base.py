"""The base of every record: a frozen dataclass with a shallow ``to_dict``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


class Record:
    """Shared by the records: a shallow ``to_dict`` (``asdict`` deep-copies, slowly)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
