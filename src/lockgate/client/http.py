"""The REST client's reading of the server's answers: a lockgate error for every refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from lockgate import errors


def raise_for(response: httpx.Response) -> None:
    """Raise the error a refused ``response`` stands for (nothing for a success)."""
    if response.is_success:
        return
    try:
        err = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise errors.LockgateError(
            f"the server answered {response.status_code}: {response.text[:200]}"
        ) from None
    raise error_of(err)


def error_of(err: Mapping[str, Any]) -> errors.LockgateError:
    """The error an ``{"code", "message", "details"}`` answer stands for."""
    code, message, details = err.get("code"), err.get("message", ""), err.get("details")
    if code == "invalid_params":
        return errors.ParamsError((details or {}).get("problems") or [message])
    cls = errors.LockgateError.by_code.get(code or "", errors.LockgateError)
    made = cls(message, details=details)
    made.code = code or made.code
    return made
