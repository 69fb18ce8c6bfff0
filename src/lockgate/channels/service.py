"""Channels in one installation: register, push, and read stages, manifests and deployments."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from lockgate.access.identity import Acting
from lockgate.channels.model import TENANT, Channel
from lockgate.channels.pipeline import NAMESPACE, ROLLBACK, channel_pipeline
from lockgate.core.ids import new_run_id
from lockgate.core.registry import Registry
from lockgate.core.text import unstorable
from lockgate.engine.launcher import RunStarter
from lockgate.errors import ChannelNotFound, ParamsError, TooLarge, Unauthorized
from lockgate.records import (
    ChannelRecord,
    DeploymentRecord,
    FlipRecord,
    ManifestRecord,
    RunRecord,
    StageRecord,
)
from lockgate.records.views import StageManifest
from lockgate.store import Store
from lockgate.store.audit import Audited, AuditEntry
from lockgate.store.channel_admin import SetPin
from lockgate.store.channel_ops import Push, RegisterChannel
from lockgate.store.channels import ChannelStore
from lockgate.store.ops import Op
from lockgate.store.runs import RegisterPipeline

_TENANT_RULE = "tenant: 1 to 200 letters, digits or '_.:@-', starting with a letter or digit"
PUSH_TOKEN_PREFIX = "lgp_"  # noqa: S105 - a prefix, not a secret


class Channels(Acting):
    """The channels defined here, and their state in the store."""

    def __init__(self, store: Store, registry: Registry, starter: RunStarter) -> None:
        self._db = store
        self._registry = registry
        self._starter = starter
        self.rows = ChannelStore(store)
        self._defined: dict[str, Channel] = {}

    # -- definitions -------------------------------------------------------------------

    def register(self, *channels: Channel) -> None:
        """Make channels pushable here; their pipelines run on every worker that has them."""
        for ch in channels:
            pipeline = channel_pipeline(ch, self._db)
            self._registry.add(pipeline)
            self._db.apply(
                RegisterPipeline(
                    pipeline.version, pipeline.namespace, pipeline.name, pipeline.describe()
                )
            )
            self._db.apply(
                RegisterChannel(
                    ch.name, ch.describe(), [st.name for st in ch.stages], ch.public_read
                )
            )
            self._defined[ch.name] = ch

    def get(self, name: str) -> Channel:
        """A channel defined here; :class:`ChannelNotFound` otherwise."""
        try:
            return self._defined[name]
        except KeyError:
            raise ChannelNotFound(
                f"no channel {name!r} is defined here"
                + (f" (defined: {', '.join(sorted(self._defined))})" if self._defined else "")
            ) from None

    def defines(self, name: str) -> bool:
        """Whether channel ``name`` is defined (pushable) in this process."""
        return name in self._defined

    def defined(self) -> list[Channel]:
        """Every channel defined here, by name."""
        return [self._defined[n] for n in sorted(self._defined)]

    # -- pushing -----------------------------------------------------------------------

    def prepare_push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> Push:
        """The checked write that queues a deployment; every problem listed if refused."""
        ch = self.get(channel)
        size = len(json.dumps(content, separators=(",", ":"), default=str).encode())
        if size > ch.max_content_bytes:
            raise TooLarge(
                f"content is {size} bytes; channel {channel!r} takes at most "
                f"{ch.max_content_bytes}",
                details={"size": size, "limit": ch.max_content_bytes},
            )
        unfit = unstorable(content, "content") + unstorable(command, "command")
        if unfit:  # refused before anything echoes it back
            raise ParamsError(unfit)
        problems = []
        if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
            problems.append(_TENANT_RULE)
        command = command or ch.commands[0]
        if command not in ch.commands:
            problems.append(f"command: {command!r} is not one of {', '.join(ch.commands)}")
        _, content_problems = ch.check_content(content)
        problems.extend(f"content.{p}" if not p.startswith("(") else p for p in content_problems)
        if problems:
            raise ParamsError(problems)
        deployment_id = new_run_id()
        create = self._starter.prepare_run(
            channel,
            {"deployment": deployment_id, "tenant": tenant, "command": command, "content": content},
            namespace=NAMESPACE,
            requested_by=requested_by,
            idempotency_key=idempotency_key,
        )
        return Push(deployment_id, channel, tenant, command, requested_by, create)

    def push(
        self,
        channel: str,
        tenant: str,
        content: Any,
        *,
        command: str | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentRecord:
        """Queue a deployment of ``tenant``'s ``content``, requested by (and audited as,
        in the same transaction) the identity this service acts as; deployments of a
        channel run one at a time, in push order. With ``idempotency_key``, pushing twice
        returns the first."""
        op = self.prepare_push(
            channel,
            tenant,
            content,
            command=command,
            requested_by=self.actor,
            idempotency_key=idempotency_key,
        )
        details = {"channel": channel, "tenant": tenant}
        return self._queue(op, self.identity.audit("channel.push", None, details))

    def _queue(self, op: Push, audit: AuditEntry | None) -> DeploymentRecord:
        """Apply a push (with its audit entry, whose target is the deployment) and hand its
        run to a local worker."""
        write: Op[tuple[DeploymentRecord, RunRecord, bool]] = op
        if audit is not None:
            write = Audited(op, audit, lambda result: str(result[0].id))
        record, run, created = self._db.apply(write)
        self._starter.adopt_created(op.create, run, created)
        return record

    # -- operating stages ---------------------------------------------------------------

    def rollback_stage(
        self,
        channel: str,
        stage: str,
        version: int,
    ) -> DeploymentRecord:
        """Queue a deployment that points ``stage`` back at manifest ``version``: in turn
        with the channel's pushes, through the stage's approval, flip and test, flipped back
        if they fail. The channel's head stays (later pushes merge onto it as before)."""
        ch = self.get(channel)
        if stage not in [st.name for st in ch.stages]:
            stages = ", ".join(st.name for st in ch.stages)
            raise ParamsError([f"stage: {stage!r} is not one of {stages}"])
        self.rows.manifest(channel, version)  # ChannelNotFound for an unknown version
        deployment_id = new_run_id()
        content = {"stage": stage, "version": version}
        params = {"deployment": deployment_id, "tenant": "-", "command": ROLLBACK}
        create = self._starter.prepare_run(
            channel, {**params, "content": content}, namespace=NAMESPACE, requested_by=self.actor
        )
        op = Push(deployment_id, channel, "-", ROLLBACK, self.actor, create)
        details = {"channel": channel, "stage": stage, "version": version}
        return self._queue(op, self.identity.audit("channel.rollback", None, details))

    def pin(self, channel: str, stage: str) -> StageRecord:
        """Stop promotions before ``stage`` until it is unpinned (pushes still merge and go
        through the stages before it)."""
        return self._set_pin(channel, stage, True)

    def unpin(self, channel: str, stage: str) -> StageRecord:
        """Let promotions reach ``stage`` again (from the next push)."""
        return self._set_pin(channel, stage, False)

    def _set_pin(self, channel: str, stage: str, pinned: bool) -> StageRecord:
        action = "channel.pin" if pinned else "channel.unpin"
        audit = self.identity.audit(action, channel, {"stage": stage})
        self._db.apply(SetPin(channel, stage, pinned, audit))
        return next(st for st in self.stages(channel) if st.stage == stage)

    # -- push tokens -------------------------------------------------------------------

    def create_push_token(self, channel: str, tenant: str) -> str:
        """A new push token for ``tenant`` on ``channel`` (replacing the tenant's earlier
        one); shown once, stored hashed. It pushes that tenant's content, nothing else."""
        if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
            raise ParamsError([_TENANT_RULE])
        token = f"{PUSH_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
        audit = self.identity.audit("channel.push_token.create", channel, {"tenant": tenant})
        self.rows.set_push_token(channel, tenant, _digest(token), audit)
        return token

    def revoke_push_token(self, channel: str, tenant: str) -> None:
        """Make a tenant's push token on ``channel`` stop working."""
        audit = self.identity.audit("channel.push_token.revoke", channel, {"tenant": tenant})
        self.rows.set_push_token(channel, tenant, None, audit)

    def check_push_token(self, channel: str, token: str | None) -> str:
        """The tenant a push token of ``channel`` pushes for; :class:`Unauthorized` for any
        other token (one of another channel, or none), naming no channel."""
        if token and token.startswith(PUSH_TOKEN_PREFIX):
            holder = self.rows.push_token_holder(_digest(token))
            if holder is not None and hmac.compare_digest(holder[0], channel):
                return holder[1]
        raise Unauthorized("a valid bearer token is required")

    # -- reading -----------------------------------------------------------------------

    def record(self, channel: str) -> ChannelRecord:
        """A channel's stored state."""
        return self.rows.channel(channel)

    def registered(self) -> list[ChannelRecord]:
        """Every channel registered in the database (by any server or worker), by name."""
        return self.rows.all()

    def stage_manifest(self, channel: str, stage: str) -> StageManifest:
        """The manifest a stage serves now (one indexed read)."""
        return _served(channel, stage, self.rows.stage_manifest(channel, stage))

    async def stage_manifest_async(self, channel: str, stage: str) -> StageManifest:
        """:meth:`stage_manifest` without blocking the event loop."""
        return _served(channel, stage, await self.rows.stage_manifest_async(channel, stage))

    def stages(self, channel: str) -> list[StageRecord]:
        """Every stage's pointer, in order (one query)."""
        self.rows.channel(channel)
        return self.rows.stages(channel)

    def manifest(self, channel: str, version: int) -> ManifestRecord:
        """One manifest by version."""
        return self.rows.manifest(channel, version)

    def history(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[ManifestRecord]:
        """Manifests newest first, each with its parent."""
        self.rows.channel(channel)
        return self.rows.history(channel, before=before, limit=limit)

    def tenant_slice(self, channel: str, stage: str, tenant: str) -> tuple[StageManifest, Any]:
        """A tenant's part of the manifest a stage serves."""
        current = self.stage_manifest(channel, stage)
        part = self.get(channel).tenant_slice(current.data(), tenant)
        if part is None:
            raise ChannelNotFound(
                f"tenant {tenant!r} has nothing in version {current.version} of {channel!r}"
            )
        return current, part

    def deployments(
        self, channel: str, *, before: int | None = None, limit: int = 50
    ) -> list[DeploymentRecord]:
        """A channel's deployments, newest first."""
        self.rows.channel(channel)
        return self.rows.deployments(channel, before=before, limit=limit)

    def flips(self, channel: str, stage: str | None = None, limit: int = 100) -> list[FlipRecord]:
        """Moves of a channel's stage pointers (flips and flip-backs), newest first."""
        self.rows.channel(channel)  # unknown channels are ChannelNotFound
        return self.rows.flips(channel, stage, limit)

    def deployment(self, deployment_id: str) -> DeploymentRecord:
        """One deployment with its run's status."""
        return self.rows.deployment(deployment_id)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _served(channel: str, stage: str, found: tuple[int, str, str] | None) -> StageManifest:
    if found is None:
        raise ChannelNotFound(f"stage {stage!r} of channel {channel!r} has no manifest yet")
    version, digest, body = found
    return StageManifest(channel, stage, version, digest, body)
