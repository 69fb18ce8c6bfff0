"""The provider protocol: check the raw bytes, then parse them into a TriggerEvent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from lockgate.errors import BadPayload as BadPayload  # their home is the one error tree
from lockgate.errors import BadSignature as BadSignature
from lockgate.triggers.event import TriggerEvent

Headers = Mapping[str, str]


def hmac_hex(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """Hex HMAC of ``body`` under ``secret``."""
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


class Provider(ABC):
    """A webhook sender: how it signs, and what its payloads mean."""

    name: ClassVar[str]
    #: False for senders that cannot sign (Gerrit): the trigger's URL is the credential.
    signed: ClassVar[bool] = True

    @abstractmethod
    def verify(self, headers: Headers, body: bytes, secret: str) -> None:
        """Raise :class:`BadSignature` unless ``body`` was signed with ``secret``."""

    @abstractmethod
    def parse(self, headers: Headers, data: Any) -> TriggerEvent:
        """The normalised event of a verified, decoded payload."""

    def replay_key(self, headers: Headers, body: bytes) -> str | None:
        """What identifies a verified delivery against replays (SHA-256, hex): by default
        its signed body, so that the same body sent again is a duplicate whatever its
        unsigned delivery id says. ``None`` for an empty body, which tells one delivery
        from another by nothing signed: its delivery id alone identifies it."""
        return hashlib.sha256(body).hexdigest() if body else None


#: Signed timestamps older (or newer) than this are refused (Standard Webhooks).
TOLERANCE = 300


def verify_standard(headers: Headers, body: bytes, key: bytes) -> None:
    """Check a Standard Webhooks signature (``webhook-signature: v1,<base64 HMAC-SHA256 of
    id.timestamp.body>``): the signed timestamp must be within 5 minutes."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
        raise BadSignature("webhook-id missing, or webhook-timestamp missing or outside 5 minutes")
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        part.split(",", 1)[1]
        for part in headers.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    if not any(same(o, expected) for o in offered):
        raise BadSignature("wrong webhook-signature")


def standard_replay_key(headers: Headers) -> str:
    """A Standard Webhooks delivery's identity: its signed unique id (the same body sent
    again under a new id is a new delivery; the same id again is a replay)."""
    return hashlib.sha256(b"webhook-id:" + headers.get("webhook-id", "").encode()).hexdigest()
