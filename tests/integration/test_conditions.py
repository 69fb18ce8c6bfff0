"""A step's condition (``if:`` in a file, ``when=`` in Python): false, the step is SKIPPED
with the reason and the run goes on; a bad condition is a load error with its line; one that
cannot be evaluated fails its step."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from lockgate import App, DefinitionError, Pipeline, RunStatus, StepContext, step
from lockgate.errors import SpecError
from lockgate.kinds import sleep
from lockgate.specs import load_file

CONDITIONAL = """\
name: conditional
params:
  env: {type: string, required: true}
steps:
  - name: build
    kind: python
    function: MODULE:build
  - name: prod-only
    kind: sleep
    seconds: 0
    if: params.env == 'prod' and steps.build.output.tag == 'v1'
  - name: elsewhere
    kind: sleep
    seconds: 0
    if: steps['prod-only'].outcome == 'skipped'
  - name: finally
    kind: sleep
    seconds: 0
"""


def load(tmp_path: Path, body: str) -> Pipeline:
    """The pipeline ``body`` (``MODULE``: a module of its own beside it, with ``build``)."""
    name = f"condition_helpers_{uuid.uuid4().hex[:8]}"  # one per test: modules are cached
    (tmp_path / f"{name}.py").write_text("def build(ctx):\n    return {'tag': 'v1'}\n")
    sys.path.insert(0, str(tmp_path))
    path = tmp_path / "p.yaml"
    path.write_text(body.replace("MODULE", name))
    try:
        return load_file(path)
    finally:
        sys.path.remove(str(tmp_path))


async def test_a_false_condition_skips_its_step_with_the_reason(
    app: App, worker: object, tmp_path: Path
) -> None:
    app.register(load(tmp_path, CONDITIONAL))
    dev = app.start_run("conditional", {"env": "dev"})
    prod = app.start_run("conditional", {"env": "prod"})
    worker.wake()  # type: ignore[attr-defined]
    for run, expected in (
        (dev, {"build": "COMPLETED", "prod-only": "SKIPPED", "elsewhere": "COMPLETED"}),
        (prod, {"build": "COMPLETED", "prod-only": "COMPLETED", "elsewhere": "SKIPPED"}),
    ):
        assert (await app.wait(run.id, timeout=20)).status == RunStatus.SUCCEEDED
        steps = {s.name: s.status for s in app.get_run(run.id).steps}
        assert steps == {**expected, "finally": "COMPLETED"}
    skipped = [e for e in app.events(dev.id) if e.step == "prod-only"]
    assert [e.status for e in skipped] == ["SKIPPED"]
    assert "if params.env == 'prod'" in (skipped[0].message or "")
    logged = [line.message for line in app.logs(dev.id, "prod-only")]
    assert logged and logged[0].startswith("skipped: if params.env == 'prod'")


def test_a_bad_condition_is_a_load_error_with_its_line(tmp_path: Path) -> None:
    body = """\
name: bad
params:
  env: {type: string}
steps:
  - name: one
    kind: sleep
    seconds: 0
    if: params.env ==
  - name: two
    kind: sleep
    seconds: 0
    if: os.system('x') or params.region == 'eu' or steps.three.outcome == 'completed'
  - name: three
    kind: sleep
    seconds: 0
    if: params.env.upper() == 'PROD'
    rollback: {kind: sleep, seconds: 0, if: "true"}
"""
    with pytest.raises(SpecError) as info:
        load(tmp_path, body)
    found = [str(p) for p in info.value.problems]
    assert any(":8:" in p and "if: 'params.env ==' is not an expression" in p for p in found)
    assert any(":12:" in p and "unknown name(s) os" in p for p in found)
    assert any(":12:" in p and "calls nothing" in p for p in found)
    assert any(":12:" in p and "params.region is not a param" in p for p in found)
    assert any(":12:" in p and "steps.three is not a step before this one" in p for p in found)
    assert any(":16:" in p and "calls nothing" in p for p in found)
    assert any("rollback" in p and "takes no if" in p for p in found)


async def test_a_condition_that_cannot_be_evaluated_fails_its_step(
    app: App, worker: object, tmp_path: Path
) -> None:
    body = CONDITIONAL.replace(
        "if: params.env == 'prod' and steps.build.output.tag == 'v1'",
        "if: steps.build.output.missing == 1",
    )
    app.register(load(tmp_path, body))
    run = app.start_run("conditional", {"env": "dev"})
    worker.wake()  # type: ignore[attr-defined]
    done = await app.wait(run.id, timeout=20)
    assert done.status == RunStatus.FAILED  # nothing before it has a rollback
    assert "could not be evaluated" in (done.error or "")
    failed = {s.name: s for s in app.get_run(run.id).steps}["prod-only"]
    assert failed.status == "FAILED" and "could not be evaluated" in (failed.error or "")


async def test_when_in_python(app: App, worker: object) -> None:
    ran: list[str] = []

    @step
    def first(ctx: StepContext) -> int:
        ran.append("first")
        return 3

    @step(when="steps.first.output > 2")
    def big(ctx: StepContext) -> None:
        ran.append("big")

    @step(when="run.requested_by == 'nobody-at-all'")
    def never(ctx: StepContext) -> None:
        ran.append("never")

    nap = sleep("nap", seconds=0, when="steps.never.outcome == 'skipped'")
    app.register(Pipeline("when", [first, big, never, nap]))
    run = app.acting("olga").start_run("when")
    worker.wake()  # type: ignore[attr-defined]
    assert (await app.wait(run.id, timeout=20)).status == RunStatus.SUCCEEDED
    assert ran == ["first", "big"]
    assert app.get_run(run.id).steps[-1].status == "COMPLETED"  # a kind's when= too
    with pytest.raises(DefinitionError, match=r"steps.later is not a step before this one"):

        @step(when="steps.later.outcome == 'completed'")
        def early(ctx: StepContext) -> None: ...

        Pipeline("bad", [early, first.rename("later")])
    # A condition is part of the version; a step without one describes as before.
    assert "if" in big.describe() and "if" not in first.describe()
