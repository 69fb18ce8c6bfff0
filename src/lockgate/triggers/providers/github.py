"""GitHub: ``X-Hub-Signature-256: sha256=<hex>`` over the raw body."""

from __future__ import annotations

from typing import Any

from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.providers.base import BadSignature, Headers, Provider, hmac_hex, same


class GitHub(Provider):
    """Events: push (branches and tags), pull_request, ping."""

    name = "github"

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Check X-Hub-Signature-256."""
        sent = headers.get("x-hub-signature-256", "")
        if not sent.startswith("sha256=") or not same(sent[7:], hmac_hex(secret, body)):
            raise BadSignature("missing or wrong X-Hub-Signature-256")

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """push -> ref and commit; pull_request -> action, head branch and commit."""
        event = headers.get("x-github-event", "")
        repo = (data.get("repository") or {}).get("full_name")
        actor = (data.get("sender") or {}).get("login")
        delivery = headers.get("x-github-delivery")
        if event == "pull_request":
            pr = data.get("pull_request") or {}
            action = data.get("action", "")
            if action == "closed" and pr.get("merged"):
                action = "merged"
            head = pr.get("head") or {}
            return TriggerEvent(
                "github",
                f"pull_request.{action}",
                repo,
                head.get("ref"),
                head.get("ref"),
                None,
                head.get("sha"),
                actor,
                delivery,
                data,
            )
        ref = data.get("ref")
        branch, tag = split_ref(ref)
        kind = "tag" if tag else event
        return TriggerEvent(
            "github", kind, repo, ref, branch, tag, data.get("after"), actor, delivery, data
        )
