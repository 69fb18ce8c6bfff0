"""Channels over REST: what ``App.channels`` is in-process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from lockgate import errors
from lockgate.client.http import raise_for
from lockgate.records import (
    ChannelRecord,
    DeploymentRecord,
    FlipRecord,
    ManifestRecord,
    StageRecord,
)
from lockgate.records.views import StageManifest, canonical

if TYPE_CHECKING:
    from lockgate.client.rest import RestClient


class RestChannels:
    """The channel routes, returning the same records as ``App.channels``."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentRecord:
        """Queue a deployment (the server records the token's subject as the pusher)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"tenant": tenant, "content": content, "command": command}
        found = self._rest._call("POST", f"/channels/{channel}/push", json=body, headers=headers)
        return DeploymentRecord(**found)

    def registered(self) -> list[ChannelRecord]:
        """Every channel registered, by name."""
        found = self._rest._call("GET", "/channels")
        return [ChannelRecord(**{k: v for k, v in c.items() if k != "defined_here"}) for c in found]

    def stages(self, channel: str) -> list[StageRecord]:
        """Every stage's pointer."""
        return [StageRecord(**s) for s in self._rest._call("GET", f"/channels/{channel}/stages")]

    def stage_manifest(self, channel: str, stage: str) -> StageManifest:
        """The manifest a stage serves."""
        try:
            r = self._rest._http.get(f"/api/v1/channels/{channel}/stages/{stage}/manifest")
        except httpx.HTTPError as exc:
            raise errors.StoreError(f"cannot reach the lockgate server: {exc}") from exc
        raise_for(r)
        digest = r.headers["etag"].strip('"')
        return StageManifest(channel, stage, int(r.headers["x-manifest-version"]), digest, r.text)

    def manifest(self, channel: str, version: int) -> ManifestRecord:
        """One manifest by version."""
        found = self._rest._call("GET", f"/channels/{channel}/manifests/{version}")
        body, _ = canonical(found.pop("manifest"))  # the text as stored, byte for byte
        return ManifestRecord(**found, body=body)

    def history(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[ManifestRecord]:
        """Manifests, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        found = self._rest._call("GET", f"/channels/{channel}/manifests", params=query)
        return [ManifestRecord(**m, body="") for m in found["manifests"]]

    def deployments(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """Deployments, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["before"] = before
        found = self._rest._call("GET", f"/channels/{channel}/deployments", params=query)
        return [DeploymentRecord(**d) for d in found["deployments"]]

    def deployment(self, deployment_id: str) -> DeploymentRecord:
        """One deployment (any channel)."""
        found = self._rest._call("GET", f"/channels/-/deployments/{deployment_id}")
        found.pop("run", None)
        return DeploymentRecord(**found)

    def rollback_stage(
        self,
        channel: str,
        stage: str,
        version: int,
    ) -> DeploymentRecord:
        """Queue a stage's rollback (as the token's subject)."""
        path = f"/channels/{channel}/stages/{stage}/rollback"
        return DeploymentRecord(**self._rest._call("POST", path, json={"version": version}))

    def pin(self, channel: str, stage: str) -> StageRecord:
        """Stop promotions at a stage."""
        return StageRecord(**self._rest._call("POST", f"/channels/{channel}/stages/{stage}/pin"))

    def unpin(self, channel: str, stage: str) -> StageRecord:
        """Let promotions reach a stage again."""
        path = f"/channels/{channel}/stages/{stage}/unpin"
        return StageRecord(**self._rest._call("POST", path))

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of the channel's stages, newest first."""
        query: dict[str, Any] = {"limit": limit, **({"stage": stage} if stage else {})}
        found = self._rest._call("GET", f"/channels/{channel}/flips", params=query)
        return [FlipRecord(**f) for f in found]

    def create_push_token(self, channel: str, tenant: str) -> str:
        """A tenant's push token (replacing its earlier one), shown once."""
        body = {"tenant": tenant}
        made = self._rest._call("POST", f"/channels/{channel}/push-token", json=body)
        return str(made["token"])

    def revoke_push_token(self, channel: str, tenant: str) -> None:
        """Revoke a tenant's push token."""
        self._rest._call_empty(
            "DELETE", f"/channels/{channel}/push-token", params={"tenant": tenant}
        )
