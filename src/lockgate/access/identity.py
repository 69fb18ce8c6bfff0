"""Who acts: an identity bound to the App and its services, never passed call by call.

Every face acts as someone: the REST API as a token's subject and roles, the console as the
signed-in person, the command line as ``--as`` (or the OS user). It asks the App for a view
bound to that identity (:meth:`lockgate.App.acting`) and calls it like any other: the view's
services audit their writes as that subject, decisions are authorised against its roles,
and runs it starts record it as their requester. The App itself acts as nobody: what it does
is not audited, and it may not decide on an approval.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from lockgate.store.audit import AuditEntry


@dataclass(frozen=True)
class Identity:
    """A subject and the roles it holds; ``subject=None`` is nobody (the App itself)."""

    subject: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, subject: str | None, roles: Iterable[str] = ()) -> Identity:
        """The identity of ``subject`` holding ``roles``."""
        return cls(subject, frozenset(roles))

    def audit(
        self, action: str, target: str | None = None, details: Any = None
    ) -> AuditEntry | None:
        """The audit entry of ``action`` done by this identity (``None`` for nobody: the
        App's own actions are not audited)."""
        if self.subject is None:
            return None
        return AuditEntry(self.subject, action, target, details)


#: The App's own identity: nobody.
NOBODY = Identity()


class Acting:
    """A service whose calls are made by one identity; :meth:`acting` gives a copy bound to
    another, sharing everything else (its store, caches and state)."""

    identity: Identity = NOBODY

    def acting(self, identity: Identity | str, roles: Iterable[str] = ()) -> Self:
        """This service, acting as ``identity`` (or as subject ``identity`` holding
        ``roles``)."""
        bound = copy.copy(self)
        bound.identity = (
            identity if isinstance(identity, Identity) else Identity.of(identity, roles)
        )
        return bound

    @property
    def actor(self) -> str | None:
        """The subject its writes are audited as (``None``: not audited)."""
        return self.identity.subject
