"""GitLab: ``X-Gitlab-Token`` (the secret itself), or the signed ``webhook-signature``."""

from __future__ import annotations

from typing import Any

from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.providers.base import (
    BadSignature,
    Headers,
    Provider,
    same,
    standard_replay_key,
    verify_standard,
)


class GitLab(Provider):
    """Events: Push Hook, Tag Push Hook, Merge Request Hook."""

    name = "gitlab"

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Check webhook-signature (v1, HMAC-SHA256 of id.timestamp.body) or X-Gitlab-Token."""
        if headers.get("webhook-signature"):
            verify_standard(headers, body, secret.encode())
            return
        if not same(headers.get("x-gitlab-token", ""), secret):
            raise BadSignature("missing or wrong X-Gitlab-Token")

    def replay_key(self, headers: Headers, body: bytes) -> str | None:
        """Signed webhooks: the signed ``webhook-id`` (a tag deleted and pushed again sends
        the same body under a new id, and starts a run); with only X-Gitlab-Token nothing
        is signed, so the body identifies it."""
        if headers.get("webhook-signature"):
            return standard_replay_key(headers)
        return super().replay_key(headers, body)

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """Push and tag push -> ref and commit; merge request -> action and source branch."""
        kind = data.get("object_kind") or headers.get("x-gitlab-event", "")
        repo = (data.get("project") or {}).get("path_with_namespace")
        delivery = (
            headers.get("x-gitlab-webhook-uuid")
            or headers.get("idempotency-key")
            or (headers.get("webhook-id"))
        )
        if kind == "merge_request":
            attrs = data.get("object_attributes") or {}
            action = attrs.get("action") or attrs.get("state") or "update"
            user = (data.get("user") or {}).get("username")
            branch = attrs.get("source_branch")
            commit = (attrs.get("last_commit") or {}).get("id")
            return TriggerEvent(
                "gitlab",
                f"merge_request.{action}",
                repo,
                branch,
                branch,
                None,
                commit,
                user,
                delivery,
                data,
            )
        ref = data.get("ref")
        branch, tag = split_ref(ref)
        return TriggerEvent(
            "gitlab",
            "tag" if tag else "push",
            repo,
            ref,
            branch,
            tag,
            data.get("after") or data.get("checkout_sha"),
            data.get("user_username") or data.get("user_name"),
            delivery,
            data,
        )
