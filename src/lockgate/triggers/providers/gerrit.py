"""Gerrit: the webhooks plugin signs nothing, so the unguessable URL is the credential
(optionally with a source-address allowlist on the trigger)."""

from __future__ import annotations

from typing import Any

from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.providers.base import Headers, Provider


class Gerrit(Provider):
    """Events: ``patchset-created``, ``ref-updated``, ``change-merged``, ... (2.x and newer)."""

    name = "gerrit"
    signed = False

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Nothing to check: the trigger id in the URL is the secret."""

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """Tolerates old and new shapes (numbers as strings or integers)."""
        kind = str(data.get("type", "event"))
        update = data.get("refUpdate") or {}
        change = data.get("change") or {}
        patch = data.get("patchSet") or {}
        person = data.get("uploader") or data.get("submitter") or data.get("author") or {}
        actor = person.get("username") or person.get("name")
        project = data.get("project") or change.get("project") or update.get("project")
        if isinstance(project, dict):
            project = project.get("name")
        if update:
            ref = update.get("refName")
            if ref and not ref.startswith("refs/"):
                ref = f"refs/heads/{ref}"
            branch, tag = split_ref(ref)
            return TriggerEvent(
                self.name, kind, project, ref, branch, tag, update.get("newRev"), actor, None, data
            )
        branch = change.get("branch")
        ref = data.get("refName") or (f"refs/heads/{branch}" if branch else None)
        return TriggerEvent(
            self.name, kind, project, ref, branch, None, patch.get("revision"), actor, None, data
        )
