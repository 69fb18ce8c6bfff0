"""``lockgate init [DIR]``: a starting layout that validates and runs."""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.output import console
from lockgate.errors import Conflict

#: What ``init`` writes (the packaged starter file -> where it goes in DIR).
LAYOUT = {
    "pipelines/deploy.yaml": "pipelines/deploy.yaml",
    "pipelines/announce.py": "pipelines/announce.py",
    "lockgate.toml": "lockgate.toml",
    "gitignore": ".gitignore",
}


def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to make the layout (made if missing).")
    ] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite files that are there already.")] = False,
) -> None:
    """Make a starting layout: a pipelines/ folder with a YAML and a Python pipeline that
    validate and run, a settings file (lockgate.toml) and a .gitignore; then say the next
    command."""
    targets = {source: directory / target for source, target in LAYOUT.items()}
    there = [str(path) for path in targets.values() if path.exists()]
    if there and not force:
        raise Conflict(f"{', '.join(there)} already there: nothing written (--force overwrites)")
    starter = resources.files("lockgate") / "starter"
    for source, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter.joinpath(source).read_text(encoding="utf-8"), encoding="utf-8")
        console.print(f"wrote {path}", highlight=False)
    go = "" if directory == Path(".") else f"cd {shlex.quote(str(directory))} && "
    console.print(
        "\nNext, run a pipeline here (a SQLite file, no server):\n"
        f"  {go}lockgate run deploy --pipelines pipelines -p service=web -p version=1.0.0 "
        "--wait\n"
        "Then serve them (REST API, web console, workers) and make a token:\n"
        "  lockgate server --pipelines pipelines\n"
        "  lockgate tokens create --name me --role admin",
        highlight=False,
        markup=False,
    )
