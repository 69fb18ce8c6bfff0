"""A run started with first values for its context bag: steps read them, REST takes them."""

from __future__ import annotations

import pytest
from api_support import Served, wait_done

from lockgate import App, ParamsError, Pipeline, RunStatus, StepContext, step


@step
def read_bag(ctx: StepContext) -> str:
    ctx.bag["seen"] = True
    return f"ticket {ctx.bag.get('ticket')}"


BAGGED = Pipeline("bagged", [read_bag])


async def test_a_run_starts_with_the_context_values_given(app: App, worker: object) -> None:
    """The step sees the values; the run keeps them with what steps added."""
    app.register(BAGGED)
    run = app.start_run("bagged", context={"ticket": "CHG-9"})
    worker.wake()  # type: ignore[attr-defined]
    done = await app.wait(run.id, timeout=10)
    assert done.status == RunStatus.SUCCEEDED
    assert app.get_run(run.id).steps[0].output == "ticket CHG-9"
    assert done.context == {"ticket": "CHG-9", "seen": True}
    with pytest.raises(ParamsError, match="context: not JSON"):
        app.start_run("bagged", context={"when": {1, 2}})


async def test_rest_takes_context_values_and_refuses_other_shapes(served: Served) -> None:
    served.app.register(BAGGED)
    async with served.client("operator") as op:
        made = await op.post(
            "/api/v1/runs", json={"pipeline": "bagged", "context": {"ticket": "CHG-2"}}
        )
        assert made.status_code == 201, made.text
        done = await wait_done(op, made.json()["id"])
        assert done["steps"][0]["output"] == "ticket CHG-2"
        wrong = await op.post("/api/v1/runs", json={"pipeline": "bagged", "context": ["x"]})
        assert wrong.status_code == 422
