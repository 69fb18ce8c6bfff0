"""API tokens and console sessions over REST: what ``App.tokens`` and ``App.sessions`` are
in-process (an admin token's work)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lockgate.records import SessionRecord, TokenRecord

if TYPE_CHECKING:
    from lockgate.client.rest import RestClient


class RestSessions:
    """The console-session routes, returning what ``App.sessions`` returns (the ref stands
    for the id, which the server never shows)."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def list(self) -> list[SessionRecord]:
        """Live sessions, newest first."""
        return [_session(found) for found in self._rest._call("GET", "/sessions")]

    def revoke(self, ref: str) -> SessionRecord:
        """End a live session now."""
        return _session(self._rest._call("DELETE", f"/sessions/{quote(ref, safe='')}"))


def _session(found: dict[str, Any]) -> SessionRecord:
    return SessionRecord(id=found.pop("ref"), csrf="", **found)


class RestTokens:
    """The token routes, returning what ``App.tokens`` returns."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def create(
        self, name: str, role: str, *, subject: str | None = None
    ) -> tuple[TokenRecord, str]:
        """A token and its secret (shown once)."""
        body = {"name": name, "role": role, "subject": subject}
        made = self._rest._call("POST", "/tokens", json=body)
        secret = made.pop("token")
        return TokenRecord(**made, hash=""), secret

    def list(self) -> list[TokenRecord]:
        """Every token, newest first."""
        return [TokenRecord(**t, hash="") for t in self._rest._call("GET", "/tokens")]

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token."""
        return TokenRecord(**self._rest._call("DELETE", f"/tokens/{token_id}"), hash="")
