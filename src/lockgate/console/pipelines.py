"""Pipelines: every registered one, a pipeline's versions and definition, and a start form
generated from its params schema (with dry-run)."""

from __future__ import annotations

import io

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from ruamel.yaml import YAML

from lockgate.console.core import (
    Operator,
    Viewer,
    back,
    console_router,
    page,
)
from lockgate.console.forms import fields_of, values_from
from lockgate.errors import PipelineNotFound

router = console_router()


def _yaml(data: object) -> str:
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(data, out)
    return out.getvalue()


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines(request: Request, who: Viewer) -> Response:
    latest: dict[str, object] = {}
    for rec in who.client.pipelines():
        latest.setdefault(f"{rec.namespace}/{rec.name}", rec)
    return page(request, "pipelines.html", title="Pipelines", pipelines=list(latest.values()))


@router.get("/pipelines/{namespace}/{name}", response_class=HTMLResponse)
def pipeline(
    request: Request, namespace: str, name: str, who: Viewer, version: str = ""
) -> Response:
    versions = [p for p in who.client.pipeline_versions(name) if p.namespace == namespace]
    if not versions:
        raise PipelineNotFound(f"no pipeline {namespace}/{name} is registered")
    shown = next((p for p in versions if p.version == version), versions[0])
    return page(
        request,
        "pipeline.html",
        title=f"{namespace}/{name}",
        pipeline=shown,
        versions=versions,
        fields=fields_of(shown.definition.get("params")),
        definition=_yaml(shown.definition),
        latest=shown.version == versions[0].version,
    )


@router.post("/pipelines/{namespace}/{name}/start")
def start(namespace: str, name: str, act: Operator) -> Response:
    versions = [p for p in act.person.client.pipeline_versions(name) if p.namespace == namespace]
    if not versions:
        raise PipelineNotFound(f"no pipeline {namespace}/{name} is registered")
    params = values_from(fields_of(versions[0].definition.get("params")), act.form, "param.")
    run = act.person.client.start_run(name, params, namespace=namespace, noop="dry_run" in act.form)
    return back(f"/runs/{run.id}", "dry run started" if "dry_run" in act.form else "run started")
