"""``lockgate settings``: the effective settings and where each came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.cli.context import state_of
from lockgate.cli.output import Output, print_json, table
from lockgate.core.masking import MASK
from lockgate.settings import Settings, redacted


def settings_command(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """The effective settings, each with where it came from (default, a LOCKGATE_*
    variable, the settings file, an option); secrets and passwords masked."""
    state = state_of(ctx)
    shown = shown_settings(state.settings)
    if output is Output.json:
        print_json(
            {
                name: {"value": v, "from": state.sources.get(name, "default")}
                for name, v in shown.items()
            }
        )
        return
    rows = [
        (name, _text(value), state.sources.get(name, "default")) for name, value in shown.items()
    ]
    table(None, ["SETTING", "VALUE", "FROM"], rows)


def shown_settings(settings: Settings) -> dict[str, Any]:
    """Every setting as plain data, with nothing secret in it: secrets by name only, the
    database URL without its password."""
    shown: dict[str, Any] = {}
    for name, value in vars(settings).items():
        if name == "secrets":
            value = {key: MASK for key in sorted(value)}
        elif name == "database_url":
            value = redacted(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        shown[name] = value
    return shown


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value) if value else "-"
    return str(value)
