"""Ids of runs and deployments."""

from __future__ import annotations

import secrets
import time


def new_run_id() -> str:
    """Time-ordered, unguessable: 12 hex digits of milliseconds + 16 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
