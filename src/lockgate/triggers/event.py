"""What a trigger fired with, normalised across providers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TriggerEvent:
    """One webhook delivery, in the same shape whichever provider sent it."""

    provider: str
    event: str
    repo: str | None = None
    ref: str | None = None
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    actor: str | None = None
    delivery_id: str | None = None
    payload: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The event without the raw payload."""
        data = asdict(self)
        data.pop("payload")
        return data


def split_ref(ref: str | None) -> tuple[str | None, str | None]:
    """(branch, tag) of a git ref like ``refs/heads/main`` or ``refs/tags/v1``."""
    if not ref:
        return None, None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), None
    if ref.startswith("refs/tags/"):
        return None, ref.removeprefix("refs/tags/")
    return None, None
