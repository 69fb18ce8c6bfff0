"""The provider protocol: check the raw bytes, then parse them into a TriggerEvent."""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from lockgate.errors import LockgateError
from lockgate.triggers.event import TriggerEvent

Headers = Mapping[str, str]


class BadSignature(LockgateError):
    """The request is not signed by the trigger's secret (answered 401)."""

    code = "bad_signature"
    http_status = 401


class BadPayload(LockgateError):
    """The body is not what the provider sends (answered 400)."""

    code = "bad_payload"
    http_status = 400


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
