"""Pipeline routes: what is registered, and a pipeline's definition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lockgate.api.deps import Viewer
from lockgate.errors import NotFound

router = APIRouter(prefix="/api/v1")


@router.get("/pipelines", summary="Registered pipelines (newest version of each)")
def list_pipelines(caller: Viewer) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in caller.client.pipelines():
        latest.setdefault(f"{rec.namespace}/{rec.name}", rec.to_dict())
    return list(latest.values())


@router.get("/pipelines/{name}", summary="A pipeline with its params schema and steps")
def show_pipeline(name: str, caller: Viewer) -> dict[str, Any]:
    for rec in caller.client.pipelines():
        if rec.name == name:
            return rec.to_dict()
    raise NotFound(f"no pipeline {name!r} is registered")


@router.get(
    "/pipelines/{name}/versions", summary="Every registered version of a pipeline, newest first"
)
def pipeline_versions(name: str, caller: Viewer) -> list[dict[str, Any]]:
    found = caller.client.pipeline_versions(name)
    if not found:
        raise NotFound(f"no pipeline {name!r} is registered")
    return [rec.to_dict() for rec in found]
