"""Secret masking applied before anything is written to a log, event or error."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from lockgate.settings import credential_key

MASK = "***"
#: A secret shorter than this cannot be masked without mangling ordinary text: refused.
MIN_SECRET_LENGTH = 4
#: A form found only inside longer encoded text (base64 at an offset) must be at least this
#: long to be masked, or ordinary text would match it by chance.
MIN_INNER_FORM = 8
#: Characters left unencoded in URLs by common encoders (httpx among them).
_SUB_DELIMS = "!$&'()*+,;="
_URL_SAFE_SETS = ("", "/", _SUB_DELIMS + ":@/", _SUB_DELIMS + ":/?[]@")


def _lower_escapes(text: str) -> str:
    """``text`` with its ``%XX`` escapes in lower case (the secret's own letters kept)."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _b64_inner(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` wherever it starts inside a longer value (``user:secret``
    in basic auth): the characters that depend on the secret alone, at each alignment."""
    found = set()
    for offset in range(3):
        data = b"\0" * offset + raw
        first = -(-8 * offset // 6)  # the first character with no prefix bits
        last = 8 * len(data) // 6  # past the last character with no bits after the secret
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            inner = encode(data).decode()[first:last]
            if len(inner) >= MIN_INNER_FORM:
                found.add(inner)
    return found


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {
        secret,
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        raw.hex(),
        raw.hex().upper(),
        *(quote(secret, safe=safe) for safe in _URL_SAFE_SETS),
        *(_lower_escapes(quote(secret, safe=safe)) for safe in _URL_SAFE_SETS),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms |= {text, text.rstrip("=")}
    forms |= _b64_inner(raw)
    # A multi-line secret (a PEM key) can reach a log line by line.
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) > 1:
        forms |= {line for line in lines if len(line) >= MIN_INNER_FORM}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def redact_keys(value: Any) -> Any:
    """JSON-like ``value`` with the value under every credential-like key replaced by
    ``***`` (for what is logged of bodies no secret is configured for: a token an API
    returned)."""
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and credential_key(k) else redact_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_keys(v) for v in value]
    return value


class Masker:
    """Replaces every known secret, and its encoded forms, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Refuses (:class:`ValueError`) a secret too short to be masked."""
        values = list(secrets)
        short = [s for s in values if len(s) < MIN_SECRET_LENGTH]
        if short:
            raise ValueError(
                f"{len(short)} secret(s) shorter than {MIN_SECRET_LENGTH} characters: too "
                "short to be masked in logs without mangling them; use longer secrets"
            )
        forms = {form for s in values for form in _forms(s)}
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """``text`` with secrets masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    @property
    def active(self) -> bool:
        """Whether there is anything to mask."""
        return self._pattern is not None

    def data(self, value: Any) -> Any:
        """JSON-like ``value`` with every string (keys too) masked."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value
