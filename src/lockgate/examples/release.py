"""Example: a release pipeline in Python.

Checks the request, builds an artifact, deploys it (saving what rollback needs), verifies
it, and announces it. Set ``fail_at`` to a step name to watch the rollback run in reverse.

    lockgate run release --examples -p service=billing -p version=1.4.2 --wait
    lockgate run release --examples -p service=billing -p version=1.4.2 -p fail_at=verify --wait
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Literal

from pydantic import BaseModel, Field

from lockgate import HookEvent, Pipeline, Retry, StepContext, step


class ReleaseParams(BaseModel):
    """What a person asks for."""

    service: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,40}$", description="Service to release.", examples=["billing"]
    )
    version: str = Field(
        pattern=r"^\d+\.\d+\.\d+$", description="Semantic version.", examples=["1.4.2"]
    )
    environment: Literal["staging", "production"] = "staging"
    fail_at: str | None = Field(default=None, description="Make this step fail (demo).")


class Artifact(BaseModel):
    """What the build produced."""

    service: str
    version: str
    environment: str
    digest: str
    fail_at: str | None = None


def _maybe_fail(ctx: StepContext, fail_at: str | None) -> None:
    if fail_at == ctx.step:
        raise RuntimeError(f"{ctx.step} failed on purpose (fail_at={fail_at})")


@step
def check(ctx: StepContext, p: ReleaseParams) -> ReleaseParams:
    """Refuse a production release of a pre-1.0 version."""
    if p.environment == "production" and p.version.startswith("0."):
        raise ValueError("pre-1.0 versions cannot go to production")
    ctx.log.info("release of %s %s to %s accepted", p.service, p.version, p.environment)
    _maybe_fail(ctx, p.fail_at)
    return p


@step(retry=Retry(attempts=3, backoff=0.5))
async def build(ctx: StepContext, p: ReleaseParams) -> Artifact:
    """Build the artifact (simulated); retried on failure with backoff."""
    ctx.log.info("building %s:%s", p.service, p.version)
    await asyncio.sleep(0.2)
    digest = hashlib.sha256(f"{p.service}:{p.version}".encode()).hexdigest()[:12]
    _maybe_fail(ctx, p.fail_at)
    return Artifact(
        service=p.service,
        version=p.version,
        environment=p.environment,
        digest=digest,
        fail_at=p.fail_at,
    )


@step(timeout=30)
async def deploy(ctx: StepContext, a: Artifact) -> Artifact:
    """Switch the environment to the new artifact, remembering the previous one."""
    previous = ctx.bag.get("deployed", {}).get(a.environment, "none")
    ctx.save({"previous": previous, "environment": a.environment})
    if ctx.noop:
        ctx.log.info("would deploy %s to %s (replacing %s)", a.digest, a.environment, previous)
        return a
    ctx.log.info("deploying %s to %s (replacing %s)", a.digest, a.environment, previous)
    await asyncio.sleep(0.3)
    ctx.bag.setdefault("deployed", {})[a.environment] = a.digest
    _maybe_fail(ctx, a.fail_at)
    return a


@deploy.rollback
async def undeploy(ctx: StepContext, a: Artifact) -> None:
    """Put the previous artifact back."""
    saved = ctx.load({})
    ctx.log.warning("restoring %s in %s", saved.get("previous"), saved.get("environment"))
    await asyncio.sleep(0.1)


@step
async def verify(ctx: StepContext, a: Artifact) -> Artifact:
    """Smoke-test the deployment."""
    for probe in ("health", "version", "latency"):
        ctx.log.info("probe %s: ok", probe)
        await asyncio.sleep(0.05)
    _maybe_fail(ctx, a.fail_at)
    return a


@step
def announce(ctx: StepContext, a: Artifact) -> dict[str, str]:
    """Say it is done."""
    ctx.log.info("%s %s is live in %s", a.service, a.version, a.environment)
    return {"service": a.service, "version": a.version, "digest": a.digest}


release = Pipeline(
    "release",
    [check, build, deploy, verify, announce],
    params=ReleaseParams,
    description="Build, deploy, verify and announce a service release.",
)


@release.hook("run_finished")
def summary(event: HookEvent) -> None:
    """Log the outcome once, whatever it was."""
    event.log.info("release run %s finished %s", event.run_id, event.status)
