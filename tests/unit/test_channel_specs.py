"""Channel definitions in Python and in channel files: what is accepted, and every problem
of a bad file reported at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lockgate import Channel, DefinitionError, Stage
from lockgate.channels.pipeline import channel_pipeline
from lockgate.specs import SpecError
from lockgate.specs.channels import load_channel_file
from lockgate.specs.discover import load_definitions
from lockgate.store import open_store

EXAMPLES = Path(__file__).parents[2] / "src" / "lockgate" / "examples"


def merge(manifest: Any, request: Any) -> Any:
    return manifest


def test_the_yaml_example_loads_with_its_hooks() -> None:
    ch = load_channel_file(EXAMPLES / "flags-lite.yaml")
    assert ch.name == "flags-lite" and [st.name for st in ch.stages] == ["live"]
    assert ch.public_read and ch.commands == ("merge", "clear")
    _, problems = ch.check_content({"values": ["Bad Name"], "extra": 1})
    assert len(problems) == 2


def test_examples_hold_both_channels() -> None:
    pipelines, channels = load_definitions(["lockgate.examples"])
    assert {c.name for c in channels} == {"flags", "flags-lite"}
    assert "channel" not in {p.namespace for p in pipelines}


def test_a_bad_channel_file_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """channel: bad
merge: no.such.module:merge
colour: blue
stages:
  - name: beta
    test:
      kind: teleport
  - name: gamma
    prepare:
      kind: shell
      argv: [echo, "${steps.nothing.version}", "${nope}"]
  - name: queue
"""
    )
    with pytest.raises(SpecError) as refused:
        load_channel_file(path)
    text = str(refused.value)
    assert f"{path}:3:9: colour: unknown field" in text
    assert f"{path}:2:8: merge: cannot import module 'no.such.module'" in text
    assert f"{path}:7:13: stages.0.test.kind: unknown step kind 'teleport'" in text
    assert "${steps.nothing.version}" in text and "nope" in text
    assert "a stage cannot be called 'queue'" in text
    lines = [p.line for p in refused.value.problems]
    assert 7 in lines and 11 in lines


def test_python_definitions_are_checked() -> None:
    with pytest.raises(DefinitionError, match="defined twice"):
        Channel("c", merge=merge, stages=[Stage("a"), Stage("a")])
    with pytest.raises(DefinitionError, match="cannot be called 'merge'"):
        Stage("merge")
    with pytest.raises(DefinitionError, match="channel name"):
        Channel("bad name", merge=merge)
    with pytest.raises(DefinitionError, match="merge must be callable"):
        Channel("c", merge="nope")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="request schema"):
        Channel("c", merge=merge, request={"type": "nonsense"})
    with pytest.raises(DefinitionError, match="approval"):
        Stage("prod", approval={"required": 0})


def test_the_pipeline_of_a_channel_follows_its_stages(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    ch = Channel(
        "c",
        merge=merge,
        validate_manifest=lambda d: None,
        stages=[
            Stage("beta", prepare=lambda d: None),
            Stage("prod", approval={}, test=lambda d: None),
        ],
    )
    p = channel_pipeline(ch, store)
    assert [s.name for s in p.steps] == [
        "queue",
        "merge",
        "validate_manifest",
        "beta.prepare",
        "beta.flip",
        "prod.approval",
        "prod.flip",
        "prod.test",
        "publish",
    ]
    assert p.key == "channel/c"
    # The definition is in the version: another merge makes another version.
    other = Channel(
        "c", merge=lambda m, r: m, stages=ch.stages, validate_manifest=ch.validate_manifest
    )
    assert channel_pipeline(other, store).version != p.version
    store.close()
