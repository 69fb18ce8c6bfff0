"""Helpers for the API tests (the ``served`` fixture lives in this folder's conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from lockgate import App, StepContext, step
from lockgate.records import RunRecord
from lockgate.testing import eventually_async


class Params(BaseModel):
    env: str
    replicas: int = 1


@step
def deploy(ctx: StepContext, p: Params) -> dict[str, Any]:
    ctx.log.info("deploying to %s", p.env)
    return {"env": p.env}


@dataclass
class Served:
    base: str
    tokens: dict[str, str]
    app: App

    def client(self, who: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=10)


async def wait_done(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run as REST shows it, once it has finished."""

    async def finished() -> dict[str, Any] | None:
        run = (await client.get(f"/api/v1/runs/{run_id}")).json()
        return dict(run) if run["status"] in FINISHED else None

    found: dict[str, Any] = await eventually_async(finished, f"run {run_id} to finish", 10)
    return found


async def wait_status(app: App, run_id: str, status: str, timeout: float = 20) -> RunRecord:
    """The run, once its status is ``status``."""

    def reached() -> RunRecord | None:
        run = app.get_run(run_id).run
        return run if run.status == status else None

    found: RunRecord = await eventually_async(reached, f"run {run_id} {status}", timeout)
    return found


#: Statuses a run ends in.
FINISHED = ("SUCCEEDED", "FAILED", "ROLLED_BACK", "ROLLBACK_FAILED", "CANCELLED")
