"""What a queue message becomes: its delivery, and the run it starts (or why it starts
none, and whether it goes to the dead letters)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lockgate.core.codec import loads
from lockgate.core.statuses import DeliveryStatus
from lockgate.core.text import clean, needs_cleaning, unstorable
from lockgate.engine.launcher import RunStarter
from lockgate.records import QueueRecord
from lockgate.store.deliveries import Deliver
from lockgate.triggers.firing import Plan, delivery_run_key, plan_run
from lockgate.triggers.sources import Message


class MessagePlanner:
    """Plans the deliveries of a queue trigger's messages: bodies past ``max_message_bytes``
    (with their headers) are REJECTED unread."""

    def __init__(self, starter: RunStarter, max_message_bytes: int) -> None:
        self._starter = starter
        self.max_message_bytes = max_message_bytes

    def plan_data(
        self,
        queue: QueueRecord,
        data: Mapping[str, Any],
        run_key: str,
        traceparent: str | None = None,
    ) -> tuple[Plan, bool]:
        """The run a read message starts, and whether it goes to the dead letters: none and
        REJECTED when the filters leave it out (not a dead letter) or it cannot be mapped to
        a run (a dead letter, with the reason)."""
        why = left_out(queue.match, data)
        if why is not None:
            return (None, DeliveryStatus.REJECTED, why), False
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
        (create, status, error), dead = self.plan_data(
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


def traceparent_of(headers: Mapping[str, str]) -> str | None:
    """A message's W3C ``traceparent`` header, whatever its case."""
    for name, value in headers.items():
        if name.lower() == "traceparent" and isinstance(value, str):
            return value
    return None


def left_out(match: Mapping[str, list[str]], data: Mapping[str, Any]) -> str | None:
    """Why the trigger's filters leave the message out, or ``None`` if they take it."""
    for path, globs in match.items():
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
        if not any(fnmatch.fnmatchcase(text, glob) for glob in globs):
            return f"filtered out: {path} is {text!r}, not one of {globs}"
    return None
