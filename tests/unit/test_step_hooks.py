"""Lifecycle hooks for one named step: in Python and in a pipeline file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate import DefinitionError, Pipeline, StepContext, step
from lockgate.core.context import StepLogger
from lockgate.core.hooks import HookEvent, HookPoint
from lockgate.specs import SpecError, load_file


@step
def build(ctx: StepContext) -> None:
    pass


@step
def deploy(ctx: StepContext) -> None:
    pass


def event(point: HookPoint, step: str) -> HookEvent:
    return HookEvent(point, "r", "p", {}, False, StepLogger(lambda *a: None), step=step)  # type: ignore[arg-type]


async def test_a_step_hook_is_called_for_its_step_only() -> None:
    seen: list[str] = []
    p = Pipeline("p", [build, deploy])
    before = p.version

    @p.hook("step_completed", step="deploy")
    def note(e: HookEvent) -> None:
        seen.append(str(e.step))

    assert p.version != before  # the hook and its step are part of the version
    for name in ("build", "deploy"):
        await p.hooks.fire(event(HookPoint.STEP_COMPLETED, name))
    assert seen == ["deploy"]
    other = Pipeline("p", [build, deploy])
    other.hook("step_completed", step="build")(note)
    assert other.version != p.version
    with pytest.raises(DefinitionError, match="which it does not have"):
        p.hook("step_failed", step="nope")(note)
    with pytest.raises(DefinitionError, match="a hook for one step goes at"):
        p.hook("run_finished", step="deploy")(note)


def test_a_pipeline_file_gives_a_hook_a_step(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nsteps:\n  - {name: a, kind: shell, argv: ['true']}\n"
        "hooks:\n  step_failed:\n    - {kind: shell, argv: ['true'], step: a}\n"
    )
    assert load_file(path).hooks.at(HookPoint.STEP_FAILED)[0].step == "a"  # type: ignore[attr-defined]
    path.write_text(
        "name: p\nsteps:\n  - {name: a, kind: shell, argv: ['true']}\n"
        "hooks:\n  step_failed:\n    - {kind: shell, argv: ['true'], step: b}\n"
        "  run_finished:\n    - {kind: shell, argv: ['true'], step: a}\n"
    )
    with pytest.raises(SpecError) as info:
        load_file(path)
    messages = [p.message for p in info.value.problems]
    assert any("no step is called 'b'" in m for m in messages)
    assert any("a hook for one step goes at" in m for m in messages)
