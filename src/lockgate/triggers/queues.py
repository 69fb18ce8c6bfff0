"""Queue triggers: messages from a broker (a Redis stream, a RabbitMQ queue) start runs, as
webhooks do.

Every ``lockgate server`` consumes every enabled queue trigger, as one more competing
consumer. Messages are taken ``batch_size`` at a time; their deliveries and runs commit in
one transaction, and only then are the messages acknowledged. A message the broker gives
again (its consumer died before acknowledging) is its delivery stored before, by the
message's id: it starts no second run. A message that cannot be read (its body is not JSON)
or mapped (its params do not render or are refused) is a REJECTED delivery with the reason,
and goes to the trigger's dead-letter stream; it never holds up the queue. One left out by
the trigger's ``match`` filters is REJECTED and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import hashlib
import importlib.util
import json
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog

from lockgate.core.codec import loads
from lockgate.core.statuses import DeliveryStatus
from lockgate.core.text import clean, needs_cleaning, unstorable
from lockgate.engine.launcher import RunStarter
from lockgate.errors import LockgateError, ParamsError
from lockgate.observability import tracing
from lockgate.records import DeliveryRecord, QueueRecord
from lockgate.settings import credential_keys
from lockgate.store import Store
from lockgate.store.audit import AuditEntry
from lockgate.store.deliveries import Deliver
from lockgate.store.queues import QueueStore
from lockgate.store.triggers import FinishDelivery
from lockgate.triggers.firing import Plan, delivery_run_key, plan_run
from lockgate.triggers.managed import Managed
from lockgate.triggers.pollers import SECRET_NAME
from lockgate.triggers.sources import BROKERS, Message, Source, open_source

#: Seconds between looks at which queue triggers exist (new, changed, paused, deleted).
SYNC_INTERVAL = 2.0
#: Seconds a receive waits for a first message (how soon a consumer notices it should stop).
RECEIVE_WAIT = 1.0
#: Seconds a stopping server gives its consumers to finish the batch in hand.
STOP_GRACE = 10.0
#: Backoff after a broker error, doubling to this.
MAX_BACKOFF = 30.0
MAX_BATCH = 1000
#: Characters of a stream, queue or group name.
NAME_LIMIT = 200


def _check(
    broker: str,
    url: str,
    source: str,
    names: Mapping[str, str],
    batch_size: int,
    claim_after: float,
    match: Mapping[str, Any],
    credentials: str | None,
) -> None:
    """Refuse a queue trigger's settings with every problem listed."""
    problems = []
    if broker not in BROKERS:
        problems.append(f"broker: one of {', '.join(BROKERS)} (not {broker!r})")
    elif importlib.util.find_spec(BROKERS[broker]) is None:
        problems.append(
            f"broker: {broker} needs the {BROKERS[broker]} package: pip install 'lockgate[mq]'"
        )
    parts = urlsplit(url)
    if broker == "redis" and parts.scheme not in ("redis", "rediss"):
        problems.append("url: a redis:// or rediss:// URL")
    if broker == "rabbitmq" and parts.scheme not in ("amqp", "amqps"):
        problems.append("url: an amqp:// or amqps:// URL")
    if parts.password:
        problems.append(
            "url: no password in the URL: name a secret holding it in credentials instead"
        )
    if keys := credential_keys(url):
        problems.append(
            f"url: no credentials in the query ({', '.join(keys)}): name a secret holding "
            "the password in credentials instead"
        )
    for field, value in {"source": source, **names}.items():
        if not value or len(value) > NAME_LIMIT or any(c in value for c in "\n\r\0"):
            problems.append(f"{field}: 1 to {NAME_LIMIT} characters, on one line")
    if names.get("dead_letter") == source:
        problems.append("dead_letter: another stream than the one read")
    if not 1 <= batch_size <= MAX_BATCH:
        problems.append(f"batch_size: 1 to {MAX_BATCH}")
    if claim_after < 1:
        problems.append("claim_after: at least 1 second")
    for path, globs in match.items():
        head = str(path).split(".", 1)[0]
        if head not in ("body", "headers", "id"):
            problems.append(f"match: {path!r} starts with body., headers. or id")
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
            problems.append(f"match: {path!r} maps to a list of globs")
    if credentials is not None and not SECRET_NAME.fullmatch(credentials):
        problems.append("credentials: the name of a configured secret (letters, digits, _)")
    if problems:
        raise ParamsError(problems)


class Queues(Managed[QueueRecord]):
    """Creates queue triggers and consumes them."""

    kind = "queue"

    def __init__(
        self,
        store: Store,
        starter: RunStarter,
        secrets: Mapping[str, str] | None = None,
        *,
        max_message_bytes: int = 1024 * 1024,
        tracer: tracing.Tracer = tracing.OFF,
    ) -> None:
        self._secrets = secrets or {}
        self._tracer = tracer
        #: Bodies and headers larger than this together are REJECTED unread.
        self.max_message_bytes = max_message_bytes
        self._store = store
        self._starter = starter
        self.store = self.rows = QueueStore(store)
        self.log = structlog.get_logger("lockgate.queue")
        #: The source each queue trigger is read from now, by trigger id (a consumer that
        #: is connected and reading; gone once it stops).
        self.reading: dict[str, str] = {}
        #: This process's name among a group's consumers.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

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
        """A queue trigger; refused with every problem listed. ``params`` is a template
        over ``${message.body...}``, ``${message.headers...}`` and ``${message.id}``;
        ``match`` maps such paths (without ``message.``) to globs the value must match.
        ``credentials`` names the secret holding the broker's password."""
        dead = dead_letter or f"{source}.dead"
        names = {"dead_letter": dead, "consumer_group": consumer_group}
        filters = dict(match or {})
        _check(broker, url, source, names, batch_size, claim_after, filters, credentials)
        audit = AuditEntry(actor, "queue.create", None, {"broker": broker}) if actor else None
        return self.store.create(
            {
                "id": secrets.token_hex(8),
                "namespace": namespace,
                "pipeline": pipeline,
                "broker": broker,
                "url": url,
                "source": source,
                "dead_letter": dead,
                "consumer_group": consumer_group,
                "match": filters,
                "params": dict(params or {}),
                "batch_size": batch_size,
                "claim_after": claim_after,
                "last_error": None,
                "enabled": True,
                "credentials": credentials,
            },
            audit,
        )

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
        """Change a queue trigger (``None``: unchanged; ``credentials=""`` drops them);
        every problem listed. Running consumers pick the change up within seconds."""
        old = self.get(queue_id)
        given: dict[str, Any] = {
            "pipeline": pipeline,
            "namespace": namespace,
            "url": url,
            "source": source,
            "dead_letter": dead_letter,
            "consumer_group": consumer_group,
            "match": None if match is None else {k: list(v) for k, v in match.items()},
            "params": None if params is None else dict(params),
            "batch_size": batch_size,
            "claim_after": claim_after,
            "credentials": credentials,
        }
        values = {k: v for k, v in given.items() if v is not None}
        if credentials == "":
            values["credentials"] = None
        merged = {**old.to_dict(), "url": old.url, **values}
        names = {"dead_letter": merged["dead_letter"], "consumer_group": merged["consumer_group"]}
        _check(
            old.broker,
            merged["url"],
            merged["source"],
            names,
            merged["batch_size"],
            merged["claim_after"],
            merged["match"],
            merged["credentials"],
        )
        if not values:
            return old
        details = {"fields": sorted(values)}
        audit = AuditEntry(actor, "queue.update", None, details) if actor else None
        self.forget(queue_id)
        return self.store.update(queue_id, values, audit)

    # -- consuming ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every enabled queue trigger until ``stop`` is set: one task each,
        started, restarted (changed) and ended (paused, deleted) as the table says."""
        tasks: dict[str, tuple[QueueRecord, asyncio.Task[None]]] = {}
        try:
            while not stop.is_set():
                try:
                    wanted = {q.id: q for q in await asyncio.to_thread(self.store.enabled)}
                except Exception:
                    self.log.exception("cannot read the queue triggers")
                    wanted = {qid: q for qid, (q, _) in tasks.items()}
                for qid, (queue, task) in list(tasks.items()):
                    now = wanted.get(qid)
                    if now is None or _settings(now) != _settings(queue) or task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                        del tasks[qid]
                for qid, queue in wanted.items():
                    if qid not in tasks:
                        task = asyncio.create_task(self.consume(queue, stop), name=f"queue {qid}")
                        tasks[qid] = (queue, task)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SYNC_INTERVAL)
        finally:
            # A graceful stop lets each consumer finish its batch (commit, then acknowledge):
            # cancelled between the two, its messages would come again (harmless, slower).
            running = [task for _, task in tasks.values()]
            if running:
                await asyncio.wait(running, timeout=STOP_GRACE)
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def consume(self, queue: QueueRecord, stop: asyncio.Event) -> None:
        """Read ``queue`` until ``stop`` is set; after a broker or database error, wait
        (doubling up to 30 s) and connect again. Nothing unacknowledged is lost: the broker
        gives it again."""
        delay = 1.0
        password = self._secrets.get(queue.credentials) if queue.credentials else None
        while not stop.is_set():
            source = open_source(queue, password, self.consumer)
            try:
                if queue.credentials and password is None:
                    raise LookupError(f"credentials: no secret {queue.credentials!r} here")
                await source.open()
                self.reading[queue.id] = queue.source
                if queue.last_error is not None:
                    await asyncio.to_thread(self.store.record_error, queue.id, None)
                    queue = _cleared(queue)
                delay = 1.0
                while not stop.is_set():
                    messages = await source.receive(queue.batch_size, RECEIVE_WAIT)
                    if messages:
                        await self.take(queue, source, messages)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                self.log.warning("queue consumer failed", queue=queue.id, error=error)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.record_error, queue.id, error)
                queue = _cleared(queue, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, MAX_BACKOFF)
            finally:
                self.reading.pop(queue.id, None)
                with contextlib.suppress(Exception):
                    await source.close()

    async def take(self, queue: QueueRecord, source: Source, messages: list[Message]) -> None:
        """Store the deliveries and runs of ``messages`` in one transaction, then
        acknowledge them (and set aside those that cannot start a run). A failed write
        acknowledges nothing: the messages come again."""
        attributes: tracing.Attributes = {
            "messaging.system": queue.broker,
            "messaging.destination.name": queue.source,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.batch.message_count": len(messages),
            "lockgate.trigger.id": queue.id,
        }
        parents = [_traceparent(m.headers) for m in messages]
        linked = [p for p in parents if p is not None]
        with self._tracer.intake(f"process {queue.source}", attributes, linked):
            # A message's run continues the message's trace, or else this batch's.
            plans = await asyncio.to_thread(
                lambda: [self.plan(queue, m, p) for m, p in zip(messages, parents, strict=True)]
            )
            outcomes = await asyncio.to_thread(self._store.apply_batch, [op for op, _ in plans])
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        done = []
        for (op, dead), message, outcome in zip(plans, messages, outcomes, strict=True):
            if op.create is not None:
                _, _, _, created, run = outcome
                if run is not None:
                    self._starter.adopt_created(op.create, run, created)
            if dead is None:
                done.append(message)
            else:
                await source.dead_letter(message, dead)
        await source.ack(done)

    def redeliver(self, delivery: DeliveryRecord, audit: AuditEntry | None) -> dict[str, Any]:
        """Process a stored message's delivery again, on purpose: from its stored body and
        headers, with the trigger as it is now; it may start a new run. The outcome as a
        webhook redelivery gives it (``delivery_id``, ``status``, ``run_ids``, ``error``)."""
        queue = self.get(delivery.trigger_id)
        data = delivery.payload if isinstance(delivery.payload, Mapping) else {}
        run_key = delivery_run_key(queue.id, f"{delivery.id}:again:{delivery.attempts}")
        (create, status, error), _ = self._plan_data(queue, data, run_key)
        run_ids: list[str] = []
        if create is not None:
            create.delivery_id = delivery.id
            try:
                run, created = self._store.apply(create)
            except LockgateError as exc:
                status, error = DeliveryStatus.REJECTED, exc.message
            else:
                self._starter.adopt_created(create, run, created)
                run_ids = [run.id]
        self._store.apply(FinishDelivery(delivery.id, status, run_ids, error, audit))
        outcome = {"delivery_id": delivery.id, "status": status.value, "run_ids": run_ids}
        return {**outcome, "error": error} if error else outcome

    def _plan_data(
        self,
        queue: QueueRecord,
        data: Mapping[str, Any],
        run_key: str,
        traceparent: str | None = None,
    ) -> tuple[Plan, bool]:
        """The run a read message starts, and whether it goes to the dead letters: none and
        REJECTED when the filters leave it out (not a dead letter) or it cannot be mapped to
        a run (a dead letter, with the reason)."""
        left_out = _left_out(queue.match, data)
        if left_out is not None:
            return (None, DeliveryStatus.REJECTED, left_out), False
        create, status, error = plan_run(
            self._starter,
            pipeline=queue.pipeline,
            namespace=queue.namespace,
            params=queue.params,
            context={"message": data},
            requested_by=f"{queue.broker}:{queue.source}"[:200],
            idempotency_key=run_key,
            traceparent=traceparent,
        )
        if create is None:
            return (None, DeliveryStatus.REJECTED, error or "no run"), True
        return (create, status, error), False

    def plan(
        self, queue: QueueRecord, message: Message, traceparent: str | None = None
    ) -> tuple[Deliver, str | None]:
        """The delivery of ``message`` with the run it starts (its span a child of
        ``traceparent``, the message's), and why it goes to the dead-letter stream
        (``None``: it does not)."""
        key = message_key(message)
        event = {"kind": "message", "broker": queue.broker, "queue": queue.source, "id": key}

        def rejected(reason: str) -> tuple[Deliver, str]:
            # No message may abort its batch: what is kept of it is storable text.
            raw = message.body[:4096].decode(errors="replace")
            payload = clean({"id": key, "body": raw, "headers": message.headers})
            op = Deliver(
                queue.id, key, event, payload, None, DeliveryStatus.REJECTED, reason, "queue"
            )
            return op, reason

        size = len(message.body) + sum(len(k) + len(v) for k, v in message.headers.items())
        if size > self.max_message_bytes:
            return rejected(
                f"message is {size} bytes, over the limit of {self.max_message_bytes} "
                "(LOCKGATE_QUEUE_MAX_MESSAGE_BYTES)"
            )
        try:
            body = loads(message.body) if message.body else None
        except (ValueError, RecursionError) as exc:
            return rejected(f"body is not JSON: {exc}")
        if unfit := unstorable(body, "body") + unstorable(message.headers, "headers"):
            return rejected("; ".join(unfit))
        data = {"id": key, "body": body, "headers": message.headers}
        (create, status, error), dead = self._plan_data(
            queue, data, delivery_run_key(queue.id, key), traceparent
        )
        op = Deliver(queue.id, key, event, data, create, status, error, source="queue")
        return op, error if dead else None


#: The longest message id kept as it is (the deliveries' key column).
MAX_KEY = 200


def message_key(message: Message) -> str:
    """What identifies a message among its trigger's deliveries: the broker's id if it is
    storable text that fits, else a hash of it (``sha256:...``); a hash of the body when
    the message has no id."""
    if message.id is None or message.id == "":
        return hashlib.sha256(message.body).hexdigest()
    if len(message.id) <= MAX_KEY and not needs_cleaning(message.id):
        return message.id
    raw = message.id.encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _traceparent(headers: Mapping[str, str]) -> str | None:
    """A message's W3C ``traceparent`` header, whatever its case."""
    for name, value in headers.items():
        if name.lower() == "traceparent" and isinstance(value, str):
            return value
    return None


def _settings(queue: QueueRecord) -> dict[str, Any]:
    """What a running consumer depends on (not its last error)."""
    return {k: v for k, v in queue.to_dict().items() if k != "last_error"}


def _cleared(queue: QueueRecord, error: str | None = None) -> QueueRecord:
    return dataclasses.replace(queue, last_error=error)


def _left_out(match: Mapping[str, list[str]], data: Mapping[str, Any]) -> str | None:
    """Why the trigger's filters leave the message out, or ``None`` if they take it."""
    for path, globs in match.items():
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
        if not any(fnmatch.fnmatchcase(text, glob) for glob in globs):
            return f"filtered out: {path} is {text!r}, not one of {globs}"
    return None
