"""The same action through the in-process client and the REST client records the same."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from api_support import Served

from lockgate.examples.flags import flags
from lockgate.rest_client import RestClient
from lockgate.specs import load_file


def audited(served: Served, after: int) -> list[tuple[str, str, Any]]:
    """(actor, action, details) of the audit rows after id ``after``, token use left out."""
    return [
        (e.actor, e.action, e.details)
        for e in served.app.store.get_audit(after)
        if e.action != "token.use"
    ]


async def waiting(served: Served, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while served.app.store.get_approval(run_id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_every_audited_action_records_the_same_through_both_clients(
    served: Served, tmp_path: Path
) -> None:
    """Starting, cancelling, deciding and pushing, as alice in-process (the CLI's way) and
    as alice's token over REST: the audit rows are the same."""
    app = served.app
    path = tmp_path / "gate.yaml"
    path.write_text(
        "name: gate\nsteps:\n  - name: ok\n    kind: approval\n    allow_self_approval: true\n"
    )
    app.register(load_file(path))
    app.channels.register(flags)
    token = app.tokens.create("alice-laptop", "approver", subject="alice")[1]
    rest = RestClient(served.base, token)

    async def act(client: Any, local: bool) -> list[tuple[str, str, Any]]:
        start = max((e.id for e in app.store.get_audit(0)), default=0)
        who = {"actor": "alice"} if local else {}
        run = await asyncio.to_thread(client.start_run, "gate", requested_by="alice", **who)
        await waiting(served, run.id)
        await asyncio.to_thread(client.cancel_run, run.id, by="alice")
        other = await asyncio.to_thread(client.start_run, "gate", requested_by="alice", **who)
        await waiting(served, other.id)
        await asyncio.to_thread(client.decide, other.id, "approve", by="alice")
        await asyncio.to_thread(
            client.channels.push, "flags", "acme", {"values": ["dark"]}, requested_by="alice", **who
        )
        return audited(served, start)

    try:
        local = await act(app, True)
        remote = await act(rest, False)
    finally:
        await asyncio.to_thread(rest.close)

    def shape(rows: list[tuple[str, str, Any]]) -> list[tuple[str, str, list[str]]]:
        return [(actor, action, sorted(details or {})) for actor, action, details in rows]

    assert [action for _, action, _ in local] == [
        "run.start",
        "run.cancel",
        "run.start",
        "decision.approve",
        "channel.push",
    ]
    assert shape(local) == shape(remote)
    assert {actor for actor, _, _ in local + remote} == {"alice"}
