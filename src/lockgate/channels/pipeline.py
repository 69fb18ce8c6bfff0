"""A channel as an ordinary pipeline: a deployment is a run, so it is durable, logged, retried
and rolled back by the engine like any other.

Steps, in order::

    queue -> validate_request -> merge -> validate_manifest -> generate
          -> for each stage: <stage>.prepare -> <stage>.approval -> <stage>.flip -> <stage>.test
          -> publish

``queue`` waits (parked, no worker held) until the push is first in line and takes the
channel's turn; ``publish`` makes the manifest the channel's head and lets the next push go.
A failure anywhere rolls back: each flipped stage is put back (``<stage>.flip``'s rollback)
and the turn is let go (``queue``'s rollback).

A stage's rollback (``Channels.rollback_stage``) is a deployment of the same pipeline whose
command is ``ROLLBACK``: it takes an earlier manifest instead of merging, goes through the
steps of that one stage only (its approval, flip and test), and leaves the channel's head
where it was. A pinned stage stops a push's promotions: its steps and those of the stages
after it are passed over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from lockgate.channels.model import Channel, Deployment, Hook, PushRequest, as_json
from lockgate.core.context import StepContext
from lockgate.core.functions import call, fingerprint
from lockgate.core.hooks import HookEvent, HookPoint
from lockgate.core.pipeline import Pipeline
from lockgate.core.step import Step
from lockgate.errors import StepError
from lockgate.records.views import canonical
from lockgate.steps.approval import ApprovalKind
from lockgate.store.base import Store
from lockgate.store.channel_flips import Flip, Revert
from lockgate.store.channel_ops import FinishDeployment, TakeTurn, UseManifest, WriteManifest
from lockgate.store.channels import ChannelStore

#: The namespace channel pipelines are registered under.
NAMESPACE = "channel"
#: The command of a deployment that points one stage back at an earlier manifest.
ROLLBACK = "@rollback"


def rollback_of(ctx: StepContext) -> tuple[str, int] | None:
    """``(stage, version)`` when this run rolls a stage back, else ``None``."""
    params = ctx.raw_params
    if not isinstance(params, dict) or params.get("command") != ROLLBACK:
        return None
    content = params.get("content") or {}
    return str(content["stage"]), int(content["version"])


class DeploymentParams(BaseModel):
    """A channel run's params: the push it deploys."""

    deployment: str
    tenant: str
    command: str
    content: Any = None


def _verdict(result: Any, what: str) -> None:
    """A hook passes with ``None`` or ``True``; ``False`` or problems fail the step."""
    if result is None or result is True:
        return
    if result is False:
        raise StepError(f"{what} refused the deployment")
    if isinstance(result, str):
        raise StepError(f"{what}: {result}")
    if isinstance(result, list | tuple) and all(isinstance(p, str) for p in result):
        if result:
            raise StepError(f"{what}: " + "; ".join(result))
        return
    # Anything else (a generate's output, say) is the step's to keep in its log.


class _Builder:
    """Makes the steps of one channel's pipeline over one store."""

    def __init__(self, channel: Channel, store: Store) -> None:
        self.channel = channel
        self.store = store
        self.reads = ChannelStore(store)

    async def _apply(self, op: Any) -> Any:
        return await asyncio.to_thread(self.store.apply, op)

    async def deployment(self, ctx: StepContext, stage: str | None = None) -> Deployment:
        """The push this run deploys, with the merged manifest once there is one."""
        params = ctx.raw_params
        record = await asyncio.to_thread(self.reads.deployment, params["deployment"])
        content, _ = self.channel.check_content(params.get("content"))
        found = Deployment(
            channel=self.channel.name,
            id=record.id,
            seq=record.seq,
            tenant=record.tenant,
            command=record.command,
            content=content,
            ctx=ctx,
            stage=stage,
        )
        if record.manifest_version is not None:
            m = await asyncio.to_thread(
                self.reads.manifest, self.channel.name, record.manifest_version
            )
            found.manifest, found.version, found.parent = json.loads(m.body), m.version, m.parent
            found.hash = m.hash
        return found

    # -- the channel's own steps -------------------------------------------------------

    async def queue(self, ctx: StepContext, value: Any) -> None:
        waiting_for = await self._apply(TakeTurn(ctx.raw_params["deployment"]))
        if waiting_for is None:
            ctx.log.info("took the turn of channel %s", self.channel.name)
            return
        if ctx.wait_until is None:
            ctx.log.info("queued behind deployment %s", waiting_for)
        ctx.park(time.time() + self.channel.queue_poll)

    async def let_go(self, ctx: StepContext, value: Any) -> None:
        await self._apply(FinishDeployment(ctx.raw_params["deployment"], succeeded=False))

    async def passed_over(self, ctx: StepContext, stage: str) -> str | None:
        """Why this run passes over ``stage``'s steps, or ``None`` when it goes through them:
        a stage's rollback goes through its own stage only; a push stops at a pinned one."""
        back = rollback_of(ctx)
        if back is not None:
            return None if back[0] == stage else f"this deployment rolls back {back[0]} only"
        order = [st.name for st in self.channel.stages]
        held = ctx.bag.get("held_at")
        if held in order and order.index(stage) >= order.index(held):
            return f"stage {held} is pinned: promotions stop there"
        if await asyncio.to_thread(self.reads.pinned, self.channel.name, stage):
            ctx.bag["held_at"] = stage
            return f"stage {stage} is pinned: promotions stop there"
        return None

    def staged(self, step: Step, stage: str | None, on_rollback: bool = True) -> Step:
        """``step``, passed over when this run does not go through ``stage`` (or, without
        ``on_rollback``, when it rolls a stage back)."""
        inner = step.execute

        async def execute(ctx: StepContext, value: Any) -> Any:
            why = None
            if stage is not None:
                why = await self.passed_over(ctx, stage)
            elif not on_rollback and rollback_of(ctx) is not None:
                why = "a stage's rollback takes a manifest made before"
            if why is not None:
                ctx.log.info("passed over: %s", why)
                return value
            return await call(inner, ctx, value)

        execute.__qualname__ = f"staged:{fingerprint(inner)}:{stage}:{on_rollback}"
        return dataclasses.replace(step, execute=execute)

    async def merge(self, ctx: StepContext, value: Any) -> dict[str, Any]:
        back = rollback_of(ctx)
        if back is not None:
            m = await self._apply(UseManifest(ctx.raw_params["deployment"], back[1]))
            ctx.log.info("rolling stage %s back to version %d", back[0], m.version)
            return {"version": m.version, "parent": m.parent, "hash": m.hash}
        d = await self.deployment(ctx)
        if d.version is None:
            head = await asyncio.to_thread(self.reads.head, self.channel.name)
            base = json.loads(head.body) if head is not None else _copy(self.channel.initial)
            request = PushRequest(tenant=d.tenant, content=d.content, command=d.command)
            merged = as_json(await call(self.channel.merge, base, request))
            try:
                body, digest = canonical(merged)
            except (TypeError, ValueError) as exc:
                raise StepError(f"merge returned something that is not JSON: {exc}") from exc
            parent = head.version if head is not None else None
            m = await self._apply(WriteManifest(d.id, parent, digest, body))
            ctx.log.info(
                "manifest version %d (parent %s) from %s's push", m.version, parent, d.tenant
            )
            d.version, d.parent, d.manifest, d.hash = m.version, m.parent, merged, m.hash
        return {"version": d.version, "parent": d.parent, "hash": d.hash}

    def flip(self, stage: str) -> Step:
        async def flip(ctx: StepContext, value: Any) -> None:
            done = await self._apply(Flip(ctx.raw_params["deployment"], stage))
            if done is None:
                ctx.log.info("stage %s already serves this deployment's manifest", stage)
            else:
                ctx.log.info(
                    "stage %s: version %s -> %s", stage, done.from_version, done.to_version
                )

        async def revert(ctx: StepContext, value: Any) -> None:
            done = await self._apply(Revert(ctx.raw_params["deployment"], stage))
            if done is not None:
                ctx.log.info(
                    "stage %s put back: version %s -> %s", stage, done.from_version, done.to_version
                )

        return Step(name=f"{stage}.flip", execute=flip, rollback_fn=revert, config={"stage": stage})

    async def publish(self, ctx: StepContext, value: Any) -> None:
        back = rollback_of(ctx)
        deployment = ctx.raw_params["deployment"]
        await self._apply(FinishDeployment(deployment, succeeded=True, move_head=back is None))
        if back is None:
            ctx.log.info("channel %s head is now this deployment's manifest", self.channel.name)
        else:
            ctx.log.info("stage %s rolled back to version %d", *back)

    async def finished(self, event: HookEvent) -> None:
        """Backstop for a run that ended before its steps could let the channel go."""
        if event.status != "SUCCEEDED" and isinstance(event.raw_params, dict):
            await self._apply(FinishDeployment(event.raw_params["deployment"], succeeded=False))

    # -- users' hooks ------------------------------------------------------------------

    def hook(self, name: str, hook: Hook, stage: str | None = None) -> Step:
        """A user's hook as a step: a Step of any kind is used as is (renamed)."""
        if isinstance(hook, Step):
            return hook.rename(name)

        async def run_hook(ctx: StepContext, value: Any) -> None:
            d = await self.deployment(ctx, stage)
            _verdict(await call(hook, d), name)

        run_hook.__qualname__ = f"channel_hook:{name}"
        return Step(name=name, execute=run_hook, config={"hook": fingerprint(hook)})

    def approval(self, stage: str, config: Any) -> Step:
        kind = ApprovalKind()

        async def approve(ctx: StepContext, value: Any) -> Any:
            await kind.execute(ctx, config, value)
            return value

        return Step(
            name=f"{stage}.approval",
            execute=approve,
            config={"kind": "approval", **config.model_dump(mode="json")},
        )


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def channel_pipeline(channel: Channel, store: Store) -> Pipeline:
    """The pipeline that runs ``channel``'s deployments on ``store``."""
    b = _Builder(channel, store)

    def own(name: str, fn: Callable[..., Any], **kw: Any) -> Step:
        return Step(name=name, execute=fn, config={"channel": channel.name}, **kw)

    steps: list[Step] = [own("queue", b.queue, rollback_fn=b.let_go)]
    if channel.validate_request is not None:
        steps.append(b.staged(b.hook("validate_request", channel.validate_request), None, False))
    steps.append(own("merge", b.merge, output_type=dict[str, Any]))
    if channel.validate_manifest is not None:
        steps.append(b.hook("validate_manifest", channel.validate_manifest))
    if channel.generate is not None:
        steps.append(b.hook("generate", channel.generate))
    for st in channel.stages:
        if st.prepare is not None:
            steps.append(b.staged(b.hook(f"{st.name}.prepare", st.prepare, st.name), st.name))
        if st.approval is not None:
            steps.append(b.staged(b.approval(st.name, st.approval), st.name))
        steps.append(b.staged(b.flip(st.name), st.name))
        if st.test is not None:
            steps.append(b.staged(b.hook(f"{st.name}.test", st.test, st.name), st.name))
    steps.append(own("publish", b.publish))
    # The channel's definition (users' functions included) goes into the version hash.
    steps[0] = dataclasses.replace(
        steps[0], config={"channel": channel.name, "definition": channel.describe()}
    )
    return Pipeline(
        channel.name,
        steps,
        params=DeploymentParams,
        namespace=NAMESPACE,
        description=channel.description or f"deployments of channel {channel.name}",
        hooks=[(HookPoint.RUN_FINISHED, b.finished)],
    )
