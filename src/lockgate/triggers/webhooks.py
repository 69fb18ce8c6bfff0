"""Webhook triggers: create, update, and rotate a secret with an overlap window; the copy of
them deliveries read (:mod:`lockgate.triggers.deliveries` takes the deliveries)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from lockgate.core.templates import check
from lockgate.errors import ParamsError
from lockgate.records import TriggerRecord
from lockgate.store import Store
from lockgate.store.triggers import TriggerStore
from lockgate.triggers.managed import Managed
from lockgate.triggers.providers import PROVIDERS
from lockgate.triggers.spec import Spec

#: ``${event.*}`` fields a trigger's params may use (``${payload.*}`` reaches the raw body).
EVENT_FIELDS = (
    "provider",
    "event",
    "repo",
    "ref",
    "branch",
    "tag",
    "commit",
    "actor",
    "delivery_id",
)
#: How long a server trusts its copy of a trigger (the write re-checks it exists).
TRIGGER_CACHE_SECONDS = 5.0
TRIGGER_CACHE_SIZE = 10_000
#: How long the old secret still verifies after a rotation, unless told otherwise.
ROTATION_OVERLAP = 3600.0
MIN_SECRET = 16


def url_token_digest(token: str) -> str:
    """How an unsigned provider's URL token is stored (only its hash)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def token_matches(stored: str | None, given: str | None) -> bool:
    """Whether URL token ``given`` is the one whose hash is ``stored`` (constant time)."""
    return bool(stored and given) and hmac.compare_digest(
        stored or "", url_token_digest(given or "")
    )


def still_valid(trigger: TriggerRecord, now: float | None = None) -> str | None:
    """The trigger's previous secret (or URL token hash) while its overlap lasts."""
    now = time.time() if now is None else now
    if trigger.previous_secret and (trigger.previous_until or 0.0) > now:
        return trigger.previous_secret
    return None


def _filter_problems(
    params: Mapping[str, Any] | None, allow_ips: Sequence[str] | None
) -> list[str]:
    problems = []
    for entry in allow_ips or ():
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"allow_ips: {entry!r} is not an address or network")
    if params is not None:
        problems += [
            f"params: {p}"
            for p in check(
                dict(params),
                params=["payload"],  # ${payload.any.path} reaches the raw body
                earlier_steps=[],
                secrets=lambda _: False,
                extra={"event": list(EVENT_FIELDS)},
            )
        ]
    return problems


class TriggerCache:
    """Trigger id -> (expiry, record): the lookup every delivery makes, kept briefly
    (``TRIGGER_CACHE_SECONDS``). This process forgets a trigger it changes at once; other
    processes see a change within that time, and a delivery's write checks in its own
    transaction that the trigger still exists and is enabled."""

    def __init__(self, rows: TriggerStore) -> None:
        self._rows = rows
        self._known: dict[str, tuple[float, TriggerRecord]] = {}

    def known(self, trigger_id: str) -> bool:
        """Whether ``trigger_id`` is in memory (finding it reads no database)."""
        cached = self._known.get(trigger_id)
        return cached is not None and cached[0] > time.monotonic()

    def find(self, trigger_id: str) -> TriggerRecord | None:
        """The trigger, from memory while it is fresh; ``None`` if there is none."""
        now = time.monotonic()
        cached = self._known.get(trigger_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._rows.find(trigger_id)
        if found is None:
            self._known.pop(trigger_id, None)
        else:
            if len(self._known) > TRIGGER_CACHE_SIZE:
                self._known.clear()
            self._known[trigger_id] = (now + TRIGGER_CACHE_SECONDS, found)
        return found

    def forget(self, trigger_id: str) -> None:
        """Drop the copy of a trigger (it changed or went)."""
        self._known.pop(trigger_id, None)


class WebhookSpec(Spec):
    """A webhook trigger: a git provider's signed events start runs."""

    provider: str = Field(
        max_length=20,
        title="Provider",
        description="github, gitlab, bitbucket-cloud, bitbucket-server, gerrit or generic.",
        json_schema_extra={"enum": list(sorted(PROVIDERS))},
    )
    secret: str | None = Field(
        None,
        max_length=500,
        title="Secret",
        description=f"What the provider signs with, at least {MIN_SECRET} characters. Gerrit "
        "signs nothing: its trigger gets a URL token instead.",
        json_schema_extra={"format": "password"},
    )
    events: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Events",
        description="Only these events, e.g. push, tag (empty: every event).",
    )
    branches: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Branches",
        description="Only these branches or tags: names or globs (empty: any).",
    )
    allow_ips: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Allowed addresses",
        description="Addresses or networks deliveries may come from (empty: any).",
    )

    fixed = frozenset({"provider", "secret"})
    arguments = ("provider", "pipeline")
    flags = {"events": "--event", "branches": "--branch", "allow_ips": "--allow-ip"}


class WebhookTriggers(Managed[TriggerRecord, WebhookSpec]):
    """Creates, updates and rotates the secrets of webhook triggers."""

    kind = "trigger"
    spec = WebhookSpec

    def __init__(self, store: Store) -> None:
        self.rows = TriggerStore(store)
        #: What deliveries find triggers in (this process forgets what it changes).
        self.cache = TriggerCache(self.rows)

    def forget(self, row_id: str) -> None:
        self.cache.forget(row_id)

    def _create(self, spec: WebhookSpec) -> TriggerRecord:
        """A webhook trigger; for a provider that signs nothing, its ``url_token`` is the
        token its URL must carry (on this record only: only its hash is kept). Refused
        without a secret (fail closed), every problem listed."""
        problems = []
        known = PROVIDERS.get(spec.provider)
        if known is None:
            problems.append(f"provider: one of {', '.join(sorted(PROVIDERS))}")
        elif known.signed and (not spec.secret or len(spec.secret) < MIN_SECRET):
            problems.append(
                f"secret: required, at least {MIN_SECRET} characters (unsigned webhooks are "
                "refused)"
            )
        elif not known.signed and spec.secret:
            problems.append(
                f"secret: {spec.provider} signs nothing; the trigger gets a URL token of its own"
            )
        problems += _filter_problems(spec.params, spec.allow_ips)
        if problems:
            raise ParamsError(problems)
        assert known is not None
        url_token = None if known.signed else secrets.token_urlsafe(32)
        row = {**spec.model_dump(), "id": secrets.token_hex(20), "enabled": True}
        # A signing secret, or only the hash of an unsigned provider's URL token.
        row["secret"] = spec.secret if url_token is None else url_token_digest(url_token)
        record = self.rows.create(row, self.audit("create", {"pipeline": spec.pipeline}))
        return dataclasses.replace(record, url_token=url_token)

    def _update(self, trigger_id: str, changes: dict[str, Any]) -> TriggerRecord:
        """Change what a trigger starts and which events it takes; every problem listed.
        The provider and the secret stay (rotate the secret)."""
        problems = _filter_problems(changes.get("params"), changes.get("allow_ips"))
        if "pipeline" in changes and not changes["pipeline"]:
            problems.append("pipeline: a pipeline's name")
        if problems:
            raise ParamsError(problems)
        self.forget(trigger_id)
        if not changes:
            return self.get(trigger_id)
        details = {"fields": sorted(changes)}
        return self.rows.update(trigger_id, changes, self.audit("update", details))

    def rotate_secret(
        self,
        trigger_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: float = ROTATION_OVERLAP,
    ) -> tuple[TriggerRecord, str]:
        """Give a trigger a new secret (``secret``, or a new random one), shown once; the
        old one still verifies for ``overlap_seconds`` (0: it stops at once). A provider
        that signs nothing gets a new URL token instead, and the old token likewise."""
        trigger = self.get(trigger_id)
        signed = PROVIDERS[trigger.provider].signed
        problems = []
        if not 0 <= overlap_seconds <= 30 * 86400:
            problems.append("overlap_seconds: 0 to 30 days")
        if signed and secret is not None and len(secret) < MIN_SECRET:
            problems.append(f"secret: at least {MIN_SECRET} characters")
        if not signed and secret is not None:
            problems.append(f"secret: {trigger.provider} signs nothing; its URL token is made")
        if problems:
            raise ParamsError(problems)
        new = secret or secrets.token_urlsafe(32)
        values = {
            "secret": new if signed else url_token_digest(new),
            "previous_secret": trigger.secret if overlap_seconds > 0 else None,
            "previous_until": time.time() + overlap_seconds if overlap_seconds > 0 else None,
        }
        audit = self.audit("rotate_secret", {"overlap_seconds": overlap_seconds})
        self.forget(trigger_id)
        return self.rows.update(trigger_id, values, audit), new
