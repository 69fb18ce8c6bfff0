"""Opaque page cursors: a keyset position (a few JSON values) as URL-safe text."""

from __future__ import annotations

import base64
import json
from typing import Any

from lockgate.errors import ParamsError


def encode_cursor(*position: Any) -> str:
    """The cursor for a keyset position (the sort key of the last item on a page)."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[Any]:
    """The position in ``cursor``; :class:`ParamsError` for text no list returned."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParamsError(["cursor: not a cursor this API returned"]) from exc
    if not isinstance(position, list) or len(position) != parts:
        raise ParamsError(["cursor: not a cursor this API returned"])
    return position
