"""What a trigger fired with, normalised across providers."""

from __future__ import annotations

from dataclasses import dataclass, field
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
        """The event without the raw payload (shallow: every field is a string or None)."""
        return {
            "provider": self.provider,
            "event": self.event,
            "repo": self.repo,
            "ref": self.ref,
            "branch": self.branch,
            "tag": self.tag,
            "commit": self.commit,
            "actor": self.actor,
            "delivery_id": self.delivery_id,
        }


def split_ref(ref: str | None) -> tuple[str | None, str | None]:
    """(branch, tag) of a git ref like ``refs/heads/main`` or ``refs/tags/v1``."""
    if not ref:
        return None, None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), None
    if ref.startswith("refs/tags/"):
        return None, ref.removeprefix("refs/tags/")
    return None, None
