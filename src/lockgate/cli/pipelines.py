"""``lockgate pipelines list|validate|show``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from lockgate.cli.context import pipelines_from, state_of
from lockgate.cli.output import Output, console, print_json, table, when
from lockgate.errors import DefinitionError
from lockgate.specs.document import Problem

pipelines_app = typer.Typer(help="Registered pipelines.", no_args_is_help=True)


@pipelines_app.command("list")
def pipelines_list(
    ctx: typer.Context, output: Annotated[Output, typer.Option("--output", "-o")] = Output.table
) -> None:
    """Pipelines registered in the database (the newest version of each)."""
    latest: dict[str, Any] = {}
    for rec in state_of(ctx).client().pipelines():
        latest.setdefault(f"{rec.namespace}/{rec.name}", rec)
    if output is Output.json:
        print_json([r.to_dict() for r in latest.values()])
        return
    rows = [
        (
            key,
            r.version,
            len(r.definition.get("steps", [])),
            when(r.registered_at),
            r.definition.get("description", ""),
        )
        for key, r in sorted(latest.items())
    ]
    table(None, ["PIPELINE", "VERSION", "STEPS", "REGISTERED", "DESCRIPTION"], rows)


@pipelines_app.command("validate")
def pipelines_validate(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Pipeline files, directories or modules.")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Check pipeline files (and Python pipelines): every problem, with file and line.
    With -o json, an object with valid, pipelines and problems either way (exit 2 when
    invalid)."""
    try:
        loaded = pipelines_from(paths, False, state_of(ctx).settings)
    except DefinitionError as exc:
        if output is not Output.json:
            raise
        problems = getattr(exc, "problems", None) or [Problem("", 0, 0, exc.message)]
        print_json({"valid": False, "pipelines": [], "problems": [asdict(p) for p in problems]})
        raise typer.Exit(exc.exit_code) from None
    if output is Output.json:
        found = [{"pipeline": p.key, "version": p.version, "steps": len(p.steps)} for p in loaded]
        print_json({"valid": True, "pipelines": found, "problems": []})
        return
    for p in loaded:
        console.print(f"ok {p.key} version {p.version} ({len(p.steps)} steps)", highlight=False)


@pipelines_app.command("show")
def pipelines_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """A pipeline's steps and params schema (newest registered version)."""
    from lockgate.errors import PipelineNotFound

    found = state_of(ctx).client().pipeline_versions(name.split("/")[-1])
    if not found:
        raise PipelineNotFound(f"no pipeline {name!r} is registered")
    rec = found[0]
    if output is Output.json:
        print_json(rec.to_dict())
        return
    console.print(f"[bold]{rec.namespace}/{rec.name}[/bold] version {rec.version}")
    steps = rec.definition.get("steps", [])
    rows = [
        (
            s["name"],
            s["input"],
            s["output"],
            s["retry"]["attempts"],
            "yes" if s["rollback"] else "-",
            "yes" if s["idempotent"] else "no",
        )
        for s in steps
    ]
    table(None, ["STEP", "INPUT", "OUTPUT", "ATTEMPTS", "ROLLBACK", "IDEMPOTENT"], rows)
    if rec.definition.get("params"):
        console.print_json(json.dumps(rec.definition["params"]))
