"""Deliveries: what every trigger fired, and the intake of webhook deliveries (verify the raw
bytes, parse, filter, dedupe, start the run); retried when a run could not start, pruned by
retention, redelivered on purpose (a queue's by the queue triggers)."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import ipaddress
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from lockgate.access.identity import Acting
from lockgate.core.buckets import Buckets
from lockgate.core.codec import loads
from lockgate.core.periodic import every
from lockgate.core.statuses import DeliveryStatus
from lockgate.core.text import unstorable
from lockgate.engine.launcher import RunStarter
from lockgate.errors import InvalidState, LockgateError, NotFound
from lockgate.records import DeliveryRecord, TriggerRecord
from lockgate.settings import Settings
from lockgate.store import Store
from lockgate.store.audit import AuditEntry
from lockgate.store.crud import RecordTable
from lockgate.store.deliveries import Deliver
from lockgate.store.triggers import TriggerStore
from lockgate.triggers.event import TriggerEvent
from lockgate.triggers.firing import Plan, adopt, delivery_run_key, plan_run
from lockgate.triggers.providers import PROVIDERS, BadPayload, BadSignature
from lockgate.triggers.webhooks import TriggerCache, still_valid, token_matches

_log = structlog.get_logger("lockgate.webhooks")

#: Attempts at processing one delivery.
MAX_ATTEMPTS = 3
PRUNE_INTERVAL = 3600.0
#: Bodies up to this size are checked (signature, JSON, filters) on the event loop when the
#: trigger is in memory: well under a millisecond, less than a hop to a thread costs.
INLINE_CHECK_BYTES = 64 * 1024
#: JSON bodies nested deeper than this are refused (400), as are deeper run params.
MAX_DEPTH = 64


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: deep input must not exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _limited(message: str, wait: float) -> Answer:
    answer = _error(429, "rate_limited", message)
    return Answer(429, answer.body, {"Retry-After": str(max(1, math.ceil(wait)))})


@dataclass(frozen=True)
class Answer:
    """What the webhook endpoint answers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def _matches(value: str | None, globs: Sequence[str]) -> bool:
    return not globs or (value is not None and any(fnmatch.fnmatchcase(value, g) for g in globs))


class Deliveries(Acting):
    """Deliveries of every source; the intake of webhook deliveries: verify, parse,
    filter, store, start."""

    def __init__(
        self,
        store: Store,
        starter: RunStarter,
        settings: Settings,
        triggers: TriggerCache,
        owners: Sequence[RecordTable[Any]] = (),
    ) -> None:
        self._db = store
        self._starter = starter
        self._settings = settings
        self.rows = TriggerStore(store)
        #: The webhook triggers as deliveries find them (kept briefly in memory).
        self.triggers = triggers
        #: The tables of every kind of trigger, whose rows' deliveries these are.
        self._owners = owners
        #: How deliveries of other sources are redelivered (``queue``: by the queue triggers).
        self.redeliverers: dict[
            str, Callable[[DeliveryRecord, AuditEntry | None], dict[str, Any]]
        ] = {}
        #: Good deliveries per trigger, and failed attempts per sending address (in memory,
        #: per server process).
        self.delivery_budget = Buckets(settings.webhook_rate, settings.webhook_burst)
        self.failure_budget = Buckets(settings.webhook_failure_rate, settings.webhook_failure_burst)

    def list(
        self, trigger_id: str, limit: int = 100, before: int | None = None
    ) -> list[DeliveryRecord]:
        """The firings of a webhook trigger, a schedule, a poller or a queue, newest first
        (page with ``before``, the last delivery id seen)."""
        if not any(table.find(trigger_id) is not None for table in self._owners):
            raise NotFound(f"no trigger, schedule, poller or queue {trigger_id!r}")
        return self.rows.deliveries(trigger_id, limit, before)

    def known(self, trigger_id: str) -> bool:
        """Whether ``trigger_id`` is in memory: :meth:`check` then reads no database."""
        return self.triggers.known(trigger_id)

    async def receive(
        self,
        trigger_id: str,
        headers: Mapping[str, str],
        body: bytes,
        client_ip: str | None = None,
        url_token: str | None = None,
    ) -> Answer:
        """One delivery, on the event loop: checked there when that is cheap, stored (and
        its run started) through the local workers' group committer when one runs here, so
        that concurrent deliveries share transactions the way step checkpoints do. Never
        raises: every outcome is an answer."""
        if len(body) <= INLINE_CHECK_BYTES and self.triggers.known(trigger_id):
            # No I/O and a small body: cheaper here than a hop to a thread.
            checked = self.check(trigger_id, headers, body, client_ip, url_token)
        else:
            checked = await asyncio.to_thread(
                self.check, trigger_id, headers, body, client_ip, url_token
            )
        if isinstance(checked, Answer):
            return checked
        outcome: Any
        try:
            outcome = await self._starter.write(checked)
        except LockgateError as exc:
            outcome = exc
        return self.answer(checked, outcome)

    def check(
        self,
        trigger_id: str,
        headers: Mapping[str, str],
        body: bytes,
        client_ip: str | None = None,
        url_token: str | None = None,
    ) -> Answer | Deliver:
        """Everything before the write: the refusal to answer, or the write to make.

        Failed attempts (unknown triggers, bad signatures or URL tokens) spend a budget of
        the sending address, apart from the trigger's own budget of good deliveries: a
        flood of forged requests cannot crowd out the real sender.
        """
        source = client_ip or "unknown"
        trigger = self.triggers.find(trigger_id)
        provider = PROVIDERS.get(trigger.provider) if trigger is not None else None
        # A wrong id, a disabled trigger, a wrong URL token or address look the same.
        if (
            trigger is None
            or provider is None
            or not trigger.enabled
            or (trigger.allow_ips and not _allowed(client_ip, trigger.allow_ips))
            or (
                not provider.signed
                and not token_matches(trigger.secret, url_token)
                and not token_matches(still_valid(trigger), url_token)
            )
        ):
            return self._failed(source, _error(404, "not_found", "no such trigger"))
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            if provider.signed:
                if not trigger.secret:
                    return _error(404, "not_found", "no such trigger")
                try:
                    provider.verify(lowered, body, trigger.secret)
                except BadSignature:
                    previous = still_valid(trigger)  # rotated: the old one, for a while
                    if previous is None:
                        raise
                    provider.verify(lowered, body, previous)
        except BadSignature as exc:
            return self._failed(source, _error(401, "bad_signature", exc.message))
        wait = self.delivery_budget.take(trigger.id)
        if wait:
            return _limited("too many deliveries for this trigger", wait)
        try:
            try:
                data = loads(body) if body else {}
            except RecursionError as exc:
                raise BadPayload("body is nested too deeply") from exc
            except ValueError as exc:
                raise BadPayload(f"body is not JSON: {exc}") from exc
            if _depth(data) > MAX_DEPTH:
                raise BadPayload(f"body is nested deeper than {MAX_DEPTH} levels")
            if unfit := unstorable(data, "body"):
                raise BadPayload("; ".join(unfit))
            event = provider.parse(lowered, data)
        except BadPayload as exc:
            return _error(400, "bad_payload", exc.message)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            return _error(400, "bad_payload", f"unexpected payload shape: {exc}")
        replay = provider.replay_key(lowered, body)
        key = (event.delivery_id or replay or hashlib.sha256(body).hexdigest())[:200]
        plan = self._plan(trigger, delivery_run_key(trigger.id, key), event, data)
        return Deliver(trigger.id, key, event.to_dict(), data, *plan, replay=replay)

    def _failed(self, source: str, answer: Answer) -> Answer:
        """A failed attempt spends its address's budget, never the trigger's; past it the
        address only hears 429 (no more telling a right guess from a wrong one)."""
        wait = self.failure_budget.take(source)
        return _limited("too many failed attempts from this address", wait) if wait else answer

    def answer(self, op: Deliver, outcome: Any) -> Answer:
        """The answer to a delivery once its write is done: ``Deliver.apply``'s result, or
        the error it raised (a trigger deleted since the check looks like no trigger)."""
        if isinstance(outcome, NotFound):
            return _error(404, "not_found", "no such trigger")
        if isinstance(outcome, LockgateError):
            ref = secrets.token_hex(6)
            _log.error("delivery not stored", code=outcome.code, ref=ref, detail=outcome.message)
            body = {
                "error": {
                    "code": outcome.code,
                    "message": f"the delivery could not be stored; reference {ref} in the "
                    "server log",
                    "details": {"ref": ref},
                }
            }
            return Answer(503, body)
        delivery_id, status, run_ids, created, _ = outcome
        if not created:
            duplicate = {
                "delivery_id": delivery_id,
                "status": "DUPLICATE",
                "original_status": status,
                "run_ids": run_ids,
            }
            return Answer(200, duplicate)
        adopt(self._starter, op, outcome)
        return Answer(202, _outcome(delivery_id, status, run_ids, op.error))

    def _plan(self, trigger: TriggerRecord, run_key: str, event: TriggerEvent, data: Any) -> Plan:
        """The run a delivery starts under ``run_key``: none (REJECTED) when the trigger's
        filters leave the event out."""
        if not _matches(event.event, trigger.events) or not _matches(
            event.branch or event.tag, trigger.branches
        ):
            return (
                None,
                DeliveryStatus.REJECTED,
                f"filtered out: event {event.event!r}, ref {event.ref!r}",
            )
        return plan_run(
            self._starter,
            pipeline=trigger.pipeline,
            namespace=trigger.namespace,
            params=trigger.params,
            context={"event": event.to_dict(), "payload": data},
            requested_by=f"{event.provider}:{event.actor or 'unknown'}",
            idempotency_key=run_key,
        )

    def _process(
        self,
        trigger: TriggerRecord,
        delivery_id: int,
        event: TriggerEvent,
        data: Any,
        run_key: str | None = None,
        audit: AuditEntry | None = None,
    ) -> Answer:
        """Process a stored delivery again (retry or redeliver) and record the outcome."""
        key = run_key or delivery_run_key(trigger.id, str(delivery_id))
        create, status, error = self._plan(trigger, key, event, data)
        run_ids: list[str] = []
        if create is not None:
            create.delivery_id = delivery_id
            try:
                run, created = self._db.apply(create)
            except LockgateError as exc:
                status, error = DeliveryStatus.FAILED, exc.message
            else:
                self._starter.adopt_created(create, run, created)
                run_ids = [run.id]
        self.rows.finish(delivery_id, status, run_ids, error, audit)
        return Answer(202, _outcome(delivery_id, status, run_ids, error))

    def retry_pending(self, now: float | None = None) -> int:
        """Process again deliveries a crash left unprocessed, and failed ones with attempts
        left; the number processed. Their runs keep the delivery's idempotency key."""
        now = time.time() if now is None else now
        count = 0
        after = self._settings.delivery_retry_after
        for delivery in self.rows.retryable(now, after, MAX_ATTEMPTS):
            trigger = self.rows.find(delivery.trigger_id)
            if trigger is None or not self.rows.claim(delivery):
                continue
            self._process(trigger, delivery.id, TriggerEvent(**delivery.event), delivery.payload)
            count += 1
        return count

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One stored delivery of any trigger; :class:`NotFound` if unknown."""
        return self.rows.delivery(delivery_id)

    def redeliver(self, delivery_id: int) -> dict[str, Any]:
        """Process a stored delivery again, on purpose: it may start a new run. The
        outcome: ``delivery_id``, ``status``, ``run_ids`` and the ``error`` or ``reason``
        if it started none."""
        delivery = self.rows.delivery(delivery_id)
        audit = self.identity.audit("delivery.redeliver")
        other = self.redeliverers.get(delivery.source)
        if other is not None:
            return other(delivery, audit)
        if delivery.source != "webhook":
            raise InvalidState(
                f"delivery {delivery_id} is a {delivery.source} firing; only webhook and "
                "queue deliveries can be redelivered (start a run of the pipeline instead)"
            )
        trigger = self.rows.get(delivery.trigger_id)
        key = delivery_run_key(trigger.id, f"{delivery.id}:again:{delivery.attempts}")
        event = TriggerEvent(**delivery.event)
        return self._process(trigger, delivery.id, event, delivery.payload, key, audit).body

    def prune(self, now: float | None = None) -> int:
        """Apply retention to stored deliveries; the number removed."""
        now = time.time() if now is None else now
        days, count = (
            self._settings.delivery_retention_days,
            self._settings.delivery_retention_count,
        )
        self.rows.forget_replays(now - self._settings.webhook_replay_days * 86400.0)
        return self.rows.prune(now - days * 86400.0, count)

    async def run(self, stop: asyncio.Event) -> None:
        """The delivery routines: retry every ``delivery_retry_interval``, prune hourly."""
        last_prune = [0.0]

        def routines() -> None:
            self.retry_pending()
            if time.monotonic() - last_prune[0] > PRUNE_INTERVAL:
                last_prune[0] = time.monotonic()
                self.prune()

        await every(stop, self._settings.delivery_retry_interval, routines, "delivery routine")


def _allowed(client_ip: str | None, networks: Sequence[str]) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def _outcome(
    delivery_id: int, status: str, run_ids: list[str], error: str | None
) -> dict[str, Any]:
    """The body of a 202: the delivery, what became of it, and why if it started nothing."""
    result: dict[str, Any] = {"delivery_id": delivery_id, "status": status, "run_ids": run_ids}
    if error:
        result["reason" if status == DeliveryStatus.REJECTED else "error"] = error
    return result


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message, "details": None}})
