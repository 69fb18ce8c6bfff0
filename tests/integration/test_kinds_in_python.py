"""The built-in step kinds made in Python: the same checks and stored definition as a
pipeline file's, mixed with @step functions, run for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from lockgate import App, DefinitionError, Pipeline, RunStatus, StepContext, step
from lockgate.kinds import approval, shell, sleep
from lockgate.specs import load_file
from lockgate.testing import eventually_async


class Release(BaseModel):
    version: str


@step
def announce(ctx: StepContext) -> str:
    return f"released {ctx.outputs['build']['stdout']}"


@step
def explode(ctx: StepContext) -> None:
    raise RuntimeError("smoke test failed")


def test_the_stored_definition_is_the_files(tmp_path: Path) -> None:
    """A step made in Python is described exactly as the same step in a pipeline file."""
    made = shell(
        "build",
        argv=["echo", "v${version}"],
        timeout=30,
        retry={"attempts": 2},
        rollback=shell("clean", argv=["echo", "cleaned"]),
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nparams:\n  version: {type: string, required: true}\nsteps:\n"
        "  - name: build\n    kind: shell\n    argv: [echo, 'v${version}']\n    timeout: 30\n"
        "    retry: {attempts: 2}\n"
        "    rollback: {name: clean, kind: shell, argv: [echo, cleaned]}\n"
    )
    from_file = load_file(path).steps[0]
    assert made.describe() == from_file.describe()


def test_bad_steps_and_placeholders_are_refused_with_every_problem() -> None:
    """Wrong field types when the step is made; unknown params and later steps when the
    pipeline is made, every problem listed."""
    with pytest.raises(DefinitionError, match=r"step 'x': argv: Input should be a valid list"):
        shell("x", argv="make build")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="give exactly one of seconds or until"):
        sleep("wait")
    with pytest.raises(DefinitionError) as info:
        Pipeline(
            "p",
            [
                shell("b", argv=["echo", "${nope}", "${steps.later.stdout}"]),
                shell("later", argv=["true"]),
            ],
            params=Release,
        )
    assert "no param is called 'nope' (params: version)" in info.value.message
    assert "no earlier step is called 'later'" in info.value.message
    with pytest.raises(DefinitionError, match="only a step of a built-in kind"):
        shell("b", argv=["true"], rollback=announce)


async def test_a_mixed_pipeline_runs_waits_for_approval_and_rolls_back(
    app: App, worker: object
) -> None:
    """shell, approval and @step functions in one pipeline: the approval parks the run,
    a decision lets it go on; a failure later rolls the shell step back with its own
    rollback step."""
    python = sys.executable
    mixed = Pipeline(
        "mixed",
        [
            shell(
                "build",
                argv=[python, "-c", "print('${version}')"],
                rollback=shell("unbuild", argv=[python, "-c", "print('undone ${version}')"]),
            ),
            approval("sign-off", message="Ship ${version}?", allow_self_approval=True),
            announce,
        ],
        params=Release,
    )
    failing = Pipeline(
        "failing",
        [
            shell("build", argv=[python, "-c", "print(1)"], rollback=shell("undo", argv=["true"])),
            explode,
        ],
    )
    app.register(mixed, failing)
    run = app.acting("me").start_run("mixed", {"version": "2.0"})
    worker.wake()  # type: ignore[attr-defined]
    asked = lambda: app.approval(run.id) is not None  # noqa: E731
    await eventually_async(asked, f"run {run.id} to ask for approval", 5)
    assert app.run_record(run.id).status == RunStatus.WAITING
    app.acting("me").decide(run.id, "approve")
    worker.wake()  # type: ignore[attr-defined]
    done = await app.wait(run.id, timeout=10)
    assert done.status == RunStatus.SUCCEEDED
    steps = {s.name: s.output for s in app.get_run(run.id).steps}
    assert steps["announce"] == "released 2.0"
    bad = app.start_run("failing")
    worker.wake()  # type: ignore[attr-defined]
    rolled = await app.wait(bad.id, timeout=10)
    assert rolled.status == RunStatus.ROLLED_BACK
    assert {s.name: s.status for s in app.get_run(bad.id).steps}["build"] == "ROLLED_BACK"
