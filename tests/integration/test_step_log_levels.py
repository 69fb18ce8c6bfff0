"""Per-step log levels: debug lines are kept only by a step that asks for them."""

from __future__ import annotations

from lockgate import App, Pipeline, RunStatus, StepContext, step


def chatter(ctx: StepContext) -> None:
    ctx.log.debug("connection pool: %d idle", 3)
    ctx.log.info("deployed")
    ctx.log.warning("slow health check")


quiet = step(chatter, name="quiet")  # type: ignore[call-overload]
verbose = step(name="verbose", log_level="debug")(chatter)
terse = step(name="terse", log_level="warning")(chatter)


async def test_each_step_keeps_the_lines_of_its_level(app: App, worker: object) -> None:
    app.register(Pipeline("levels", [quiet, verbose, terse]))
    run = app.start_run("levels")
    worker.wake()  # type: ignore[attr-defined]
    assert (await app.wait(run.id, timeout=10)).status == RunStatus.SUCCEEDED
    kept: dict[str, list[str]] = {}
    for line in app.logs(run.id):
        kept.setdefault(line.step, []).append(line.level)
    assert kept["quiet"] == ["info", "warning"]
    assert kept["verbose"] == ["debug", "info", "warning"]
    assert kept["terse"] == ["warning"]
