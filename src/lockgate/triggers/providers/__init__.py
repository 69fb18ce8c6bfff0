"""Webhook providers by name. Adding one: a file with a Provider subclass, and a line here."""

from __future__ import annotations

from lockgate.triggers.providers.base import BadPayload, BadSignature, Provider
from lockgate.triggers.providers.bitbucket import BitbucketCloud, BitbucketServer
from lockgate.triggers.providers.generic import Generic
from lockgate.triggers.providers.gerrit import Gerrit
from lockgate.triggers.providers.github import GitHub
from lockgate.triggers.providers.gitlab import GitLab

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (GitHub(), GitLab(), BitbucketCloud(), BitbucketServer(), Gerrit(), Generic())
}

__all__ = ["PROVIDERS", "BadPayload", "BadSignature", "Provider"]
