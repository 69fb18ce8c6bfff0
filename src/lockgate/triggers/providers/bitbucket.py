"""Bitbucket Cloud and Bitbucket Server: ``X-Hub-Signature: sha256=<hex>`` over the raw body."""

from __future__ import annotations

from typing import Any

from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.providers.base import BadSignature, Headers, Provider, hmac_hex, same


def _check(headers: Headers, body: bytes, secret: str) -> None:
    sent = headers.get("x-hub-signature", "")
    if not sent.startswith("sha256=") or not same(sent[7:], hmac_hex(secret, body)):
        raise BadSignature("missing or wrong X-Hub-Signature")


class BitbucketCloud(Provider):
    """Events: ``repo:push`` (branches and tags), ``pullrequest:*``."""

    name = "bitbucket-cloud"

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Check X-Hub-Signature."""
        _check(headers, body, secret)

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """The first change of a push; a pull request's source branch and commit."""
        key = headers.get("x-event-key", "")
        repo = (data.get("repository") or {}).get("full_name")
        actor = (data.get("actor") or {}).get("nickname") or (data.get("actor") or {}).get(
            "display_name"
        )
        delivery = headers.get("x-request-uuid")
        if key.startswith("pullrequest:"):
            source = (data.get("pullrequest") or {}).get("source") or {}
            branch = (source.get("branch") or {}).get("name")
            commit = (source.get("commit") or {}).get("hash")
            return TriggerEvent(
                self.name,
                key.replace(":", "."),
                repo,
                branch,
                branch,
                None,
                commit,
                actor,
                delivery,
                data,
            )
        changes = (data.get("push") or {}).get("changes") or [{}]
        new = changes[0].get("new") or {}
        name = new.get("name")
        is_tag = new.get("type") == "tag"
        ref = f"refs/{'tags' if is_tag else 'heads'}/{name}" if name else None
        return TriggerEvent(
            self.name,
            "tag" if is_tag else "push",
            repo,
            ref,
            None if is_tag else name,
            name if is_tag else None,
            (new.get("target") or {}).get("hash"),
            actor,
            delivery,
            data,
        )


class BitbucketServer(Provider):
    """Events: ``repo:refs_changed``, ``pr:*`` (Bitbucket Server / Data Center)."""

    name = "bitbucket-server"

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Check X-Hub-Signature."""
        _check(headers, body, secret)

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """The first changed ref; a pull request's source ref."""
        key = headers.get("x-event-key") or data.get("eventKey", "")
        repo_data = data.get("repository") or {}
        project = (repo_data.get("project") or {}).get("key")
        repo = f"{project}/{repo_data.get('slug')}" if project else repo_data.get("slug")
        actor = (data.get("actor") or {}).get("name")
        delivery = headers.get("x-request-id")
        if key.startswith("pr:"):
            source = (data.get("pullRequest") or {}).get("fromRef") or {}
            return TriggerEvent(
                self.name,
                key.replace(":", "."),
                repo,
                source.get("id"),
                source.get("displayId"),
                None,
                source.get("latestCommit"),
                actor,
                delivery,
                data,
            )
        change = (data.get("changes") or [{}])[0]
        ref = change.get("refId") or (change.get("ref") or {}).get("id")
        branch, tag = split_ref(ref)
        event = "tag" if tag else "push"
        if change.get("type") == "DELETE":
            event = f"{event}.delete"
        return TriggerEvent(
            self.name, event, repo, ref, branch, tag, change.get("toHash"), actor, delivery, data
        )
