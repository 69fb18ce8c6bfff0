"""Text that cannot be stored: lone UTF-16 surrogates (no UTF-8 form, so no driver or page
can encode them) and NUL characters (PostgreSQL refuses them in text and JSON). Every door
refuses them, naming where they are; what is already stored reads back with them replaced.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

#: Characters no store takes: NUL, and surrogates (valid text pairs them into one
#: character, so any left in a ``str`` are lone).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: What an unstorable character reads back as.
REPLACEMENT = "\ufffd"
#: Problems listed at most, per value.
MAX_LISTED = 20


def _why(text: str) -> str:
    found = _UNSTORABLE.search(text)
    assert found is not None
    char = found.group(0)
    if char == "\x00":
        return "holds a NUL character (\\u0000), which cannot be stored"
    return f"holds a lone surrogate (\\u{ord(char):04x}), which is not valid Unicode text"


def unstorable(value: Any, where: str) -> list[str]:
    """Where JSON-like ``value`` (keys included) holds text that cannot be stored, as
    ``"where.key[0]: holds ..."``; empty when all of it can."""
    problems: list[str] = []
    _walk(value, where, problems)
    return problems


def _walk(value: Any, where: str, problems: list[str]) -> None:
    if len(problems) >= MAX_LISTED:
        return
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            problems.append(f"{where}: {_why(value)}")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if _UNSTORABLE.search(name):
                problems.append(f"{where}: a key {_why(name)}")
                name = clean(name)
            _walk(item, f"{where}.{name}" if where else name, problems)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            _walk(item, f"{where}[{n}]", problems)


def clean(value: Any) -> Any:
    """JSON-like ``value`` with every unstorable character (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def needs_cleaning(text: str) -> bool:
    """Whether ``text`` holds a character :func:`clean` replaces."""
    return _UNSTORABLE.search(text) is not None


def read_json(text: str | bytes) -> Any:
    """A stored JSON value as read back (the database engines' deserializer): a row stored
    before its text was checked reads with U+FFFD in place of what cannot be shown, so that
    one row never breaks a listing."""
    value = json.loads(text)
    escaped = b"\\u" in text if isinstance(text, bytes) else "\\u" in text
    return clean(value) if escaped else value


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value for a download named ``filename`` (RFC 6266): an
    ASCII fallback with anything but letters, digits, ``.``, ``_`` and ``-`` replaced
    (so no quote, semicolon or line break can add a parameter), and the exact name as
    ``filename*``, percent-encoded UTF-8."""
    name = clean(filename)
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
