"""Triggers over REST, one class for every kind (its :class:`~lockgate.triggers.spec.Kind`
says the path, the spec and the record): what ``App.webhooks``, ``App.schedules``,
``App.pollers``, ``App.queues`` and ``App.deliveries`` are in-process."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel

from lockgate.core.cursor import encode_cursor
from lockgate.records import DeliveryRecord, TriggerRecord
from lockgate.triggers.spec import Kind, Spec
from lockgate.triggers.webhooks import WebhookSpec

if TYPE_CHECKING:
    from lockgate.client.rest import RestClient

R = TypeVar("R")
S = TypeVar("S", bound=Spec)


class RestTriggers(Generic[R, S]):
    """One kind of trigger at ``/api/v1/<kind.path>``, as the token's subject."""

    def __init__(self, rest: RestClient, kind: Kind[S, R]) -> None:
        self._rest, self._kind = rest, kind
        self._path = f"/{kind.path}"
        self._fields = {f.name for f in dataclasses.fields(kind.record)}  # type: ignore[arg-type]

    def _made(self, data: dict[str, Any]) -> R:
        return self._kind.record(**{k: v for k, v in data.items() if k in self._fields})

    def create(self, spec: S | Mapping[str, Any] | None = None, /, **fields: Any) -> R:
        """A new one from its spec (or the spec's fields); every problem listed."""
        if fields:
            spec = {**(spec or {}), **fields}  # type: ignore[dict-item]
        made = self._kind.spec.read(spec if spec is not None else {})
        return self._made(self._created(made.model_dump(mode="json")))

    def _created(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._rest._call("POST", self._path, json=body)
        return answer

    def update(
        self, row_id: str, change: BaseModel | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> R:
        """Change the fields given (a field left out, or ``None``, stays as it is)."""
        body = self._kind.spec.changes(change if change is not None else fields)
        return self._made(self._rest._call("PATCH", f"{self._path}/{row_id}", json=body))

    def list(self) -> list[R]:
        """Every one (at most a page)."""
        return [self._made(d) for d in self._rest._call("GET", self._path)]

    def get(self, row_id: str) -> R:
        """One by id."""
        return self._made(self._rest._call("GET", f"{self._path}/{row_id}"))

    def pause(self, row_id: str) -> R:
        """Stop it starting runs until resumed."""
        return self._made(self._rest._call("POST", f"{self._path}/{row_id}/pause"))

    def resume(self, row_id: str) -> R:
        """Let a paused one start runs again."""
        return self._made(self._rest._call("POST", f"{self._path}/{row_id}/resume"))

    def delete(self, row_id: str) -> None:
        """Remove it and its deliveries."""
        self._rest._call("DELETE", f"{self._path}/{row_id}")


class RestWebhooks(RestTriggers[TriggerRecord, WebhookSpec]):
    """Webhook triggers over REST: a provider that signs nothing gets its URL token back
    on the created trigger (``url_token``)."""

    def _created(self, body: dict[str, Any]) -> dict[str, Any]:
        made = super()._created(body)
        made["url_token"] = _token(made["url"])
        return made

    def rotate_secret(
        self, trigger_id: str, *, secret: str | None = None, overlap_seconds: float = 3600.0
    ) -> tuple[TriggerRecord, str]:
        """A new secret (or URL token), shown once; the old one verifies for a while."""
        body = {"secret": secret, "overlap_seconds": overlap_seconds}
        made = self._rest._call("POST", f"/triggers/{trigger_id}/rotate-secret", json=body)
        new = made.pop("new_secret", None)
        return self._made(made), str(new if new is not None else _token(made["url"]))


def _token(url: str) -> str | None:
    """The URL token in a webhook's URL, if it carries one."""
    return parse_qs(urlsplit(url).query).get("token", [None])[0]


class RestDeliveries:
    """What triggers fired, over REST."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def list(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """Firings of a webhook trigger, a schedule, a poller or a queue, newest first."""
        query: dict[str, Any] = {"limit": limit}
        if before is not None:
            query["cursor"] = encode_cursor(before)
        found = self._rest._call("GET", f"/triggers/{trigger_id}/deliveries", params=query)
        return [
            DeliveryRecord(**{k: v for k, v in d.items() if k != "payload_hidden"})
            for d in found["deliveries"]
        ]

    def redeliver(self, delivery_id: int) -> dict[str, Any]:
        """Process a stored delivery again; its outcome."""
        outcome: dict[str, Any] = self._rest._call("POST", f"/deliveries/{delivery_id}/redeliver")
        return outcome
