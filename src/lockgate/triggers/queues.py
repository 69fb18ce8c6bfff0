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
import importlib.util
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import Field

from lockgate.core.statuses import DeliveryStatus
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
from lockgate.triggers.firing import delivery_run_key
from lockgate.triggers.managed import Managed
from lockgate.triggers.messages import MessagePlanner, traceparent_of
from lockgate.triggers.pollers import SECRET_NAME
from lockgate.triggers.sources import BROKERS, Message, Source, open_source
from lockgate.triggers.spec import Spec

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


def _check(queue: Mapping[str, Any]) -> None:
    """Refuse a queue trigger's settings with every problem listed."""
    broker, url, source = queue["broker"], queue["url"], queue["source"]
    names = {"dead_letter": queue["dead_letter"], "consumer_group": queue["consumer_group"]}
    batch_size, claim_after, credentials = (
        queue["batch_size"],
        queue["claim_after"],
        queue["credentials"],
    )
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
    for path, globs in queue["match"].items():
        head = str(path).split(".", 1)[0]
        if head not in ("body", "headers", "id"):
            problems.append(f"match: {path!r} starts with body., headers. or id")
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
            problems.append(f"match: {path!r} maps to a list of globs")
    if credentials is not None and not SECRET_NAME.fullmatch(credentials):
        problems.append("credentials: the name of a configured secret (letters, digits, _)")
    if problems:
        raise ParamsError(problems)


class QueueSpec(Spec):
    """A message queue whose messages start runs (a Redis stream or a RabbitMQ queue)."""

    broker: str = Field(
        "redis",
        max_length=20,
        title="Broker",
        description="The kind of broker.",
        json_schema_extra={"enum": list(BROKERS)},
    )
    url: str = Field(
        max_length=2000,
        title="Broker URL",
        description="The broker, e.g. redis://queue.internal:6379/0.",
        examples=["redis://queue.internal:6379/0"],
    )
    source: str = Field(
        max_length=200,
        title="Stream or queue",
        description="The stream (Redis) or queue (RabbitMQ) read.",
    )
    dead_letter: str | None = Field(
        None,
        max_length=200,
        title="Dead-letter stream",
        description="Where messages that cannot start a run go (default: <stream>.dead).",
    )
    consumer_group: str = Field(
        "lockgate",
        max_length=200,
        title="Consumer group",
        description="The consumer group servers read in.",
    )
    match: dict[str, Any] = Field(
        default_factory=dict,
        title="Match",
        description="Paths into the message and the globs they must match, e.g. "
        '{"headers.env": ["prod"]}; others are REJECTED.',
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="Params",
        description="The run's params as JSON; values may use placeholders, e.g. "
        '{"version": "${message.body.version}"}',
    )
    batch_size: int = Field(100, title="Batch size", description="Messages committed together.")
    claim_after: float = Field(
        30.0, title="Claim after (seconds)", description="A dead consumer's messages move then."
    )
    credentials: str | None = Field(
        None,
        max_length=200,
        title="Credentials",
        description="The name of a secret (LOCKGATE_SECRET_<NAME>) holding the password "
        '("" drops them).',
    )

    fixed = frozenset({"broker"})
    arguments = ("pipeline", "url", "source")
    flags = {"source": "--stream", "consumer_group": "--group"}


class Queues(Managed[QueueRecord, QueueSpec]):
    """Creates queue triggers and consumes them."""

    kind = "queue"
    spec = QueueSpec
    rows: QueueStore

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
        self.planner = MessagePlanner(starter, max_message_bytes)
        self._db = store
        self._starter = starter
        self.rows = QueueStore(store)
        self.log = structlog.get_logger("lockgate.queue")
        #: The source each queue trigger is read from now, by trigger id (a consumer that
        #: is connected and reading; gone once it stops).
        self.reading: dict[str, str] = {}
        #: This process's name among a group's consumers.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    def _create(self, spec: QueueSpec) -> QueueRecord:
        """A queue trigger; refused with every problem listed. ``params`` is a template
        over ``${message.body...}``, ``${message.headers...}`` and ``${message.id}``;
        ``match`` maps such paths (without ``message.``) to globs the value must match.
        ``credentials`` names the secret holding the broker's password."""
        row = spec.model_dump()
        row["dead_letter"] = spec.dead_letter or f"{spec.source}.dead"
        _check(row)
        return self.rows.create(
            {**row, "id": secrets.token_hex(8), "last_error": None, "enabled": True},
            self.audit("create", {"broker": spec.broker}),
        )

    def _update(self, queue_id: str, changes: dict[str, Any]) -> QueueRecord:
        """Change a queue trigger (``credentials=""`` drops them); every problem listed.
        Running consumers pick the change up within seconds."""
        old = self.get(queue_id)
        if changes.get("credentials") == "":
            changes["credentials"] = None
        _check({**old.to_dict(), "url": old.url, **changes})
        if not changes:
            return old
        self.forget(queue_id)
        audit = self.audit("update", {"fields": sorted(changes)})
        return self.rows.update(queue_id, changes, audit)

    # -- consuming ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every enabled queue trigger until ``stop`` is set: one task each,
        started, restarted (changed) and ended (paused, deleted) as the table says."""
        tasks: dict[str, tuple[QueueRecord, asyncio.Task[None]]] = {}
        try:
            while not stop.is_set():
                try:
                    wanted = {q.id: q for q in await asyncio.to_thread(self.rows.enabled)}
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
                    await asyncio.to_thread(self.rows.record_error, queue.id, None)
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
                    await asyncio.to_thread(self.rows.record_error, queue.id, error)
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
        parents = [traceparent_of(m.headers) for m in messages]
        linked = [p for p in parents if p is not None]
        with self._tracer.intake(f"process {queue.source}", attributes, linked):
            # A message's run continues the message's trace, or else this batch's.
            plans = await asyncio.to_thread(
                lambda: [self.plan(queue, m, p) for m, p in zip(messages, parents, strict=True)]
            )
            outcomes = await asyncio.to_thread(self._db.apply_batch, [op for op, _ in plans])
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
        (create, status, error), _ = self.planner.plan_data(queue, data, run_key)
        run_ids: list[str] = []
        if create is not None:
            create.delivery_id = delivery.id
            try:
                run, created = self._db.apply(create)
            except LockgateError as exc:
                status, error = DeliveryStatus.REJECTED, exc.message
            else:
                self._starter.adopt_created(create, run, created)
                run_ids = [run.id]
        self._db.apply(FinishDelivery(delivery.id, status, run_ids, error, audit))
        outcome = {"delivery_id": delivery.id, "status": status.value, "run_ids": run_ids}
        return {**outcome, "error": error} if error else outcome

    def plan(
        self, queue: QueueRecord, message: Message, traceparent: str | None = None
    ) -> tuple[Deliver, str | None]:
        """The delivery of ``message`` with the run it starts, and why it goes to the
        dead-letter stream (``None``: it does not): :meth:`MessagePlanner.plan`."""
        return self.planner.plan(queue, message, traceparent)


def _settings(queue: QueueRecord) -> dict[str, Any]:
    """What a running consumer depends on (not its last error)."""
    return {k: v for k, v in queue.to_dict().items() if k != "last_error"}


def _cleared(queue: QueueRecord, error: str | None = None) -> QueueRecord:
    return dataclasses.replace(queue, last_error=error)
