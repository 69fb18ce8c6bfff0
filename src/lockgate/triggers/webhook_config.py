"""Webhook triggers' settings: create, update, and rotate a secret with an overlap window."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lockgate.core.templates import check
from lockgate.errors import ParamsError
from lockgate.records import TriggerRecord
from lockgate.store.audit import AuditEntry
from lockgate.store.triggers import TriggerStore
from lockgate.triggers.managed import Managed
from lockgate.triggers.providers import PROVIDERS

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


class WebhookTriggers(Managed[TriggerRecord]):
    """Creates, updates and rotates the secrets of webhook triggers."""

    kind = "trigger"
    triggers: TriggerStore

    def create(
        self,
        provider: str,
        pipeline: str,
        *,
        secret: str | None,
        namespace: str = "default",
        events: Sequence[str] = (),
        branches: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] = (),
        actor: str | None = None,
    ) -> tuple[TriggerRecord, str | None]:
        """A webhook trigger, and for a provider that signs nothing the token its URL must
        carry (shown once; only its hash is kept). Refused without a secret (fail closed),
        every problem listed."""
        problems = []
        known = PROVIDERS.get(provider)
        if known is None:
            problems.append(f"provider: one of {', '.join(sorted(PROVIDERS))}")
        elif known.signed and (not secret or len(secret) < MIN_SECRET):
            problems.append(
                f"secret: required, at least {MIN_SECRET} characters (unsigned webhooks are "
                "refused)"
            )
        elif not known.signed and secret:
            problems.append(
                f"secret: {provider} signs nothing; the trigger gets a URL token of its own"
            )
        problems += _filter_problems(params or {}, allow_ips)
        if problems:
            raise ParamsError(problems)
        assert known is not None
        url_token = None if known.signed else secrets.token_urlsafe(32)
        record = self.triggers.create(
            {
                "id": secrets.token_hex(20),
                "provider": provider,
                "namespace": namespace,
                "pipeline": pipeline,
                # A signing secret, or only the hash of an unsigned provider's URL token.
                "secret": secret if url_token is None else url_token_digest(url_token),
                "events": list(events),
                "branches": list(branches),
                "params": dict(params or {}),
                "allow_ips": list(allow_ips),
                "enabled": True,
            },
            AuditEntry(actor, "trigger.create", None, {"pipeline": pipeline}) if actor else None,
        )
        return record, url_token

    def update(
        self,
        trigger_id: str,
        *,
        pipeline: str | None = None,
        namespace: str | None = None,
        events: Sequence[str] | None = None,
        branches: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] | None = None,
        actor: str | None = None,
    ) -> TriggerRecord:
        """Change what a trigger starts and which events it takes (``None``: unchanged);
        every problem listed. The provider and the secret stay (rotate the secret)."""
        problems = _filter_problems(params, allow_ips)
        if pipeline is not None and not pipeline:
            problems.append("pipeline: a pipeline's name")
        if problems:
            raise ParamsError(problems)
        given = {
            "pipeline": pipeline,
            "namespace": namespace,
            "events": None if events is None else list(events),
            "branches": None if branches is None else list(branches),
            "params": None if params is None else dict(params),
            "allow_ips": None if allow_ips is None else list(allow_ips),
        }
        values = {k: v for k, v in given.items() if v is not None}
        self.forget(trigger_id)
        if not values:
            return self.get(trigger_id)
        details = {"fields": sorted(values)}
        audit = AuditEntry(actor, "trigger.update", None, details) if actor else None
        return self.triggers.update(trigger_id, values, audit)

    def rotate_secret(
        self,
        trigger_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: float = ROTATION_OVERLAP,
        actor: str | None = None,
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
        details = {"overlap_seconds": overlap_seconds}
        audit = AuditEntry(actor, "trigger.rotate_secret", None, details) if actor else None
        self.forget(trigger_id)
        return self.triggers.update(trigger_id, values, audit), new
