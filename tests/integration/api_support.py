"""Helpers for the API tests (the ``served`` fixture lives in this folder's conftest)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from lockgate import App, StepContext, step


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_done(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        run = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if run["status"] in ("SUCCEEDED", "FAILED", "ROLLED_BACK", "CANCELLED"):
            return dict(run)
        await asyncio.sleep(0.02)
    raise AssertionError("run did not finish")
