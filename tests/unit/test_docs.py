"""The docs are checked against the code they describe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from lockgate.core.params import ParamSpec
from lockgate.specs.channels import ChannelSpec, StageSpec
from lockgate.specs.model import HookCommon, PipelineSpec, RetrySpec, StepCommon
from lockgate.steps import KINDS

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("model", [PipelineSpec, StepCommon, RetrySpec, ParamSpec, HookCommon])
def test_every_file_format_field_is_documented(model: type[BaseModel]) -> None:
    """docs/pipelines.md names every field a pipeline file may use."""
    text = (DOCS / "pipelines.md").read_text()
    names = [field.alias or name for name, field in model.model_fields.items()]
    missing = [name for name in names if f"{name}:" not in text]
    assert missing == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_step_kind_and_its_fields_are_documented(kind: str) -> None:
    """docs/step-kinds.md has a section per kind listing each of its fields."""
    text = (DOCS / "step-kinds.md").read_text()
    assert f"## `{kind}`" in text
    section = text.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0]
    missing = [f for f in KINDS[kind].config.model_fields if f"`{f}`" not in section]
    assert missing == []


@pytest.mark.parametrize("model", [ChannelSpec, StageSpec])
def test_every_channel_file_field_is_documented(model: type[BaseModel]) -> None:
    """docs/channels.md names every field a channel file may use."""
    text = (DOCS / "channels.md").read_text()
    missing = [name for name in model.model_fields if f"`{name}:`" not in text]
    assert missing == []


def test_the_readme_exit_code_table_is_the_error_classes() -> None:
    """README's exit codes come from the one error table (the classes' ``exit_code``)."""
    from lockgate import errors

    readme = (DOCS.parent / "README.md").read_text()
    rows = {
        int(cells[1]): cells[3]
        for line in readme.splitlines()
        if (cells := [c.strip() for c in line.split("|")]) and len(cells) > 3
        if cells[1].isdigit()
    }
    for code, cls in errors.LockgateError.by_code.items():
        if cls.exit_code in (2, 3, 4, 5):
            assert f"`{code}`" in rows[cls.exit_code], (code, cls.exit_code)


def test_the_readme_mixed_kinds_example_builds() -> None:
    """The README's pipeline mixing built-in kinds and @step functions is a valid pipeline
    (its placeholders checked against its params and steps)."""
    readme = (DOCS.parent / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "lockgate.kinds" in b
    )
    scope: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), scope)
    ship = scope["ship"]
    assert [s.name for s in ship.steps] == ["build", "sign-off", "deploy", "announce"]  # type: ignore[attr-defined]
    assert ship.steps[2].config["rollback"]["kind"] == "api"  # type: ignore[attr-defined]


def test_the_cli_reference_is_up_to_date() -> None:
    """docs/cli.md is what Typer makes of the commands (regenerate it with the command in
    DEVELOPERS.md when a command or option changes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    typer_docs = [sys.executable, "-m", "typer", "lockgate.cli.main", "utils", "docs"]
    made = subprocess.run(
        [*typer_docs, "--name", "lockgate", "--title", "Command line reference"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout == (DOCS / "cli.md").read_text(), "docs/cli.md is stale"


def test_readme_links_work_on_the_package_index() -> None:
    """The package index shows README.md away from the repository: every link is absolute,
    and each one into the repository names a file that is there."""
    import re

    root = DOCS.parent
    readme = (root / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links and all(link.startswith(("https://", "http://", "#")) for link in links)
    base = "https://github.com/lockgate/lockgate/blob/main/"
    for link in links:
        if link.startswith(base):
            assert (root / link[len(base) :].split("#")[0]).is_file(), link


def test_the_architecture_page_names_every_module_in_its_layer() -> None:
    """docs/architecture.md gives every module of lockgate its room (providers, brokers,
    examples and migrations by their folder), and every module sits in a layer of
    .importlinter's layers contract."""
    import configparser

    src = Path(__file__).resolve().parents[2] / "src" / "lockgate"
    text = (DOCS / "architecture.md").read_text()
    folders = ("migrations", "starter", "providers", "sources", "examples")
    modules = {
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        for p in src.rglob("*.py")
        if not any(part in folders for part in p.relative_to(src).parts[:-1])
    } - {"__init__"}
    missing = sorted(m for m in modules if f"`{m}`" not in text)
    assert missing == []
    config = configparser.ConfigParser()
    config.read(src.parents[1] / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    named = {n.strip() for n in re.split(r"[|:\n]", layers) if n.strip()}
    assert sorted({m.split(".")[0] for m in modules} - named) == []
