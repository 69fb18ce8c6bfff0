"""Triggers, schedules, pollers and queues over REST: what ``App.webhooks``,
``App.schedules``, ``App.pollers`` and ``App.queues`` are in-process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from lockgate.records import PollerRecord, QueueRecord, ScheduleRecord, TriggerRecord

if TYPE_CHECKING:
    from lockgate.client.rest import RestClient

R = TypeVar("R")


def _plain(value: Any) -> Any:
    """A value as JSON takes it (sequences as lists, mappings as dicts)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


class RestManaged(Generic[R]):
    """Read, pause, resume and delete of one kind of trigger at ``/api/v1/<path>``."""

    def __init__(self, rest: RestClient, path: str, record: type[R]) -> None:
        self._rest, self._path, self._record = rest, path, record

    def _made(self, data: dict[str, Any]) -> R:
        return self._record(**{k: v for k, v in data.items() if k != "url"})

    def list(self) -> list[R]:
        """Every one (at most a page)."""
        return [self._made(d) for d in self._rest._call("GET", f"/{self._path}")]

    def get(self, row_id: str) -> R:
        """One by id."""
        return self._made(self._rest._call("GET", f"/{self._path}/{row_id}"))

    def pause(self, row_id: str, *, actor: str | None = None) -> R:
        """Pause it (as the token's subject)."""
        return self._made(self._rest._call("POST", f"/{self._path}/{row_id}/pause"))

    def resume(self, row_id: str, *, actor: str | None = None) -> R:
        """Resume it (as the token's subject)."""
        return self._made(self._rest._call("POST", f"/{self._path}/{row_id}/resume"))

    def delete(self, row_id: str, *, actor: str | None = None) -> None:
        """Delete it and its deliveries (as the token's subject)."""
        self._rest._call("DELETE", f"/{self._path}/{row_id}")

    def _patch(self, row_id: str, changes: dict[str, Any]) -> R:
        """Change the fields given (``None``: unchanged), as the token's subject."""
        body = {
            k: (
                list(v) if isinstance(v, tuple | list) else dict(v) if isinstance(v, Mapping) else v
            )
            for k, v in changes.items()
            if v is not None
        }
        return self._made(self._rest._call("PATCH", f"/{self._path}/{row_id}", json=body))


class RestWebhooks(RestManaged[TriggerRecord]):
    """Webhook triggers over REST, returning what ``App.webhooks`` returns."""

    def create(
        self,
        provider: str,
        pipeline: str,
        *,
        secret: str | None,
        namespace: str = "default",
        events: Sequence[str] = (),
        branches: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] = (),
        actor: str | None = None,
    ) -> tuple[TriggerRecord, str | None]:
        """A trigger, and the URL token of a provider that signs nothing (shown once)."""
        body = {
            "provider": provider,
            "pipeline": pipeline,
            "secret": secret,
            "namespace": namespace,
            "events": list(events),
            "branches": list(branches),
            "params": dict(params or {}),
            "allow_ips": list(allow_ips),
        }
        made = self._rest._call("POST", "/triggers", json=body)
        token = parse_qs(urlsplit(made["url"]).query).get("token", [None])[0]
        return self._made(made), token

    def update(
        self,
        trigger_id: str,
        *,
        pipeline: str | None = None,
        namespace: str | None = None,
        events: Sequence[str] | None = None,
        branches: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        allow_ips: Sequence[str] | None = None,
        actor: str | None = None,
    ) -> TriggerRecord:
        """Change a trigger (``None``: unchanged)."""
        fields = {"pipeline": pipeline, "namespace": namespace, "events": events}
        more = {"branches": branches, "params": params, "allow_ips": allow_ips}
        return self._patch(trigger_id, {**fields, **more})

    def rotate_secret(
        self,
        trigger_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: float = 3600.0,
        actor: str | None = None,
    ) -> tuple[TriggerRecord, str]:
        """A new secret (or URL token), shown once; the old one verifies for a while."""
        body = {"secret": secret, "overlap_seconds": overlap_seconds}
        made = self._rest._call("POST", f"/triggers/{trigger_id}/rotate-secret", json=body)
        new = made.pop("new_secret", None)
        if new is None:
            new = parse_qs(urlsplit(made["url"]).query)["token"][0]
        return self._made(made), str(new)

    def redeliver(self, delivery_id: int, *, actor: str | None = None) -> dict[str, Any]:
        """Process a stored webhook delivery again; its outcome."""
        outcome: dict[str, Any] = self._rest._call("POST", f"/deliveries/{delivery_id}/redeliver")
        return outcome


class RestSchedules(RestManaged[ScheduleRecord]):
    """Schedules over REST."""

    def create(
        self,
        pipeline: str,
        *,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str = "UTC",
        misfire: str = "skip",
        namespace: str = "default",
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> ScheduleRecord:
        """A schedule."""
        body = {
            "pipeline": pipeline,
            "cron": cron,
            "interval_seconds": interval_seconds,
            "timezone": timezone,
            "misfire": misfire,
            "namespace": namespace,
            "params": dict(params or {}),
        }
        return self._made(self._rest._call("POST", "/schedules", json=body))

    def update(
        self,
        schedule_id: str,
        *,
        pipeline: str | None = None,
        cron: str | None = None,
        interval_seconds: float | None = None,
        timezone: str | None = None,
        misfire: str | None = None,
        namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> ScheduleRecord:
        """Change a schedule (``None``: unchanged)."""
        timing = {"cron": cron, "interval_seconds": interval_seconds, "timezone": timezone}
        rest = {"pipeline": pipeline, "misfire": misfire, "namespace": namespace}
        return self._patch(schedule_id, {**timing, **rest, "params": params})


class RestPollers(RestManaged[PollerRecord]):
    """Git pollers over REST."""

    def create(
        self,
        pipeline: str,
        repository: str,
        *,
        refs: Sequence[str] = ("refs/heads/*",),
        interval_seconds: float = 60.0,
        namespace: str = "default",
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        credentials: str | None = None,
    ) -> PollerRecord:
        """A poller."""
        body = {
            "credentials": credentials,
            "pipeline": pipeline,
            "repository": repository,
            "refs": list(refs),
            "interval_seconds": interval_seconds,
            "namespace": namespace,
            "params": dict(params or {}),
        }
        return self._made(self._rest._call("POST", "/pollers", json=body))

    def update(
        self,
        poller_id: str,
        *,
        pipeline: str | None = None,
        repository: str | None = None,
        refs: Sequence[str] | None = None,
        interval_seconds: float | None = None,
        namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
        actor: str | None = None,
        credentials: str | None = None,
    ) -> PollerRecord:
        """Change a poller (``None``: unchanged)."""
        where = {"repository": repository, "refs": refs, "interval_seconds": interval_seconds}
        rest = {"pipeline": pipeline, "namespace": namespace, "params": params}
        rest["credentials"] = credentials
        return self._patch(poller_id, {**where, **rest})


class RestQueues(RestManaged[QueueRecord]):
    """Queue triggers over REST."""

    def _made(self, data: dict[str, Any]) -> QueueRecord:
        return QueueRecord(**data)  # its url is the broker's, a field of its own

    def create(
        self,
        pipeline: str,
        broker: str,
        url: str,
        source: str,
        *,
        dead_letter: str | None = None,
        consumer_group: str = "lockgate",
        match: Mapping[str, list[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        batch_size: int = 100,
        claim_after: float = 30.0,
        namespace: str = "default",
        credentials: str | None = None,
        actor: str | None = None,
    ) -> QueueRecord:
        """A queue trigger."""
        body = {
            "pipeline": pipeline,
            "broker": broker,
            "url": url,
            "source": source,
            "dead_letter": dead_letter,
            "consumer_group": consumer_group,
            "match": {k: list(v) for k, v in (match or {}).items()},
            "params": dict(params or {}),
            "batch_size": batch_size,
            "claim_after": claim_after,
            "namespace": namespace,
            "credentials": credentials,
        }
        return self._made(self._rest._call("POST", "/queues", json=body))

    def update(
        self,
        queue_id: str,
        *,
        pipeline: str | None = None,
        namespace: str | None = None,
        url: str | None = None,
        source: str | None = None,
        dead_letter: str | None = None,
        consumer_group: str | None = None,
        match: Mapping[str, list[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        claim_after: float | None = None,
        credentials: str | None = None,
        actor: str | None = None,
    ) -> QueueRecord:
        """Change a queue trigger (``None``: unchanged)."""
        where = {"url": url, "source": source, "dead_letter": dead_letter}
        how = {"consumer_group": consumer_group, "batch_size": batch_size}
        what = {"pipeline": pipeline, "namespace": namespace, "params": params, "match": match}
        rest = {"claim_after": claim_after, "credentials": credentials}
        return self._patch(queue_id, {**where, **how, **what, **rest})
