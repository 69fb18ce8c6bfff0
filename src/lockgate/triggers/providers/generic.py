"""Generic: an HMAC of the raw body in a header (``X-Signature: sha256=<hex>`` by default)."""

from __future__ import annotations

import base64
from typing import Any

from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.providers.base import (
    BadSignature,
    Headers,
    Provider,
    hmac_hex,
    same,
    standard_replay_key,
    verify_standard,
)


class Generic(Provider):
    """Any sender that can sign its body; the event comes from ``X-Event`` or the body."""

    name = "generic"
    header = "x-signature"

    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Check ``X-Signature: sha256=<hex>`` (or a bare hex digest), or a Standard
        Webhooks ``webhook-signature`` (a ``whsec_`` secret is its base64 key)."""
        if headers.get("webhook-signature"):
            key = secret.encode()
            if secret.startswith("whsec_"):
                try:
                    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                except ValueError:
                    raise BadSignature("the trigger's whsec_ secret is not base64") from None
            verify_standard(headers, body, key)
            return
        sent = headers.get(self.header, "")
        sent = sent.removeprefix("sha256=")
        if not sent or not same(sent, hmac_hex(secret, body)):
            raise BadSignature(f"missing or wrong {self.header}")

    def replay_key(self, headers: Headers, body: bytes) -> str | None:
        """Standard Webhooks: the signed ``webhook-id``; otherwise the signed body."""
        if headers.get("webhook-signature"):
            return standard_replay_key(headers)
        return super().replay_key(headers, body)

    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """Fields ``event``, ``ref``, ``commit``, ``actor``, ``repo`` if the body has them."""
        body = data if isinstance(data, dict) else {}
        ref = body.get("ref")
        branch, tag = split_ref(ref)
        return TriggerEvent(
            "generic",
            headers.get("x-event") or body.get("event") or "event",
            body.get("repo"),
            ref,
            branch or body.get("branch"),
            tag,
            body.get("commit"),
            body.get("actor"),
            headers.get("x-delivery-id") or headers.get("webhook-id") or body.get("id"),
            data,
        )
