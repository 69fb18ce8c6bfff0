"""The run engine on real databases: checkpoints, retries, handlers, rollback, hooks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import wait_status
from pydantic import BaseModel

from lockgate import App, HookEvent, Pipeline, Retry, RunStatus, StepContext, step
from lockgate.engine.worker import Worker
from lockgate.errors import InvalidState, ParamsError
from lockgate.testing import eventually_async


class Params(BaseModel):
    env: str
    replicas: int = 1


class Artifact(BaseModel):
    name: str
    size: int


async def run(app: App, worker: Worker, name: str, params: Any = None, **kw: Any) -> str:
    record = await asyncio.to_thread(app.start_run, name, params, **kw)
    worker.wake()
    done = await app.wait(record.id, timeout=20)
    return done.id


def statuses(app: App, run_id: str) -> dict[str, str]:
    return {s.name: s.status for s in app.get_run(run_id).steps}


async def test_run_passes_typed_values_between_steps_and_records_everything(
    app: App, worker: Worker
) -> None:
    """Outputs are decoded to the next step's declared type; events and logs are stored."""
    seen: list[Any] = []

    @step
    def build(ctx: StepContext, p: Params) -> Artifact:
        ctx.log.info("building %s", p.env)
        return Artifact(name=f"app-{p.env}", size=p.replicas * 10)

    @step
    async def check(ctx: StepContext, a: Artifact) -> None:
        seen.append(a)

    @step
    def ship(ctx: StepContext, a: Artifact) -> dict[str, str]:
        seen.append(a)
        return {"shipped": a.name}

    app.register(Pipeline("deploy", [build, check, ship], params=Params))
    run_id = await run(app, worker, "deploy", {"env": "prod", "replicas": 3})
    view = app.get_run(run_id)
    assert view.run.status == RunStatus.SUCCEEDED
    assert seen == [Artifact(name="app-prod", size=30)] * 2
    assert [s.output for s in view.steps] == [
        {"name": "app-prod", "size": 30},
        {"name": "app-prod", "size": 30},
        {"shipped": "app-prod"},
    ]
    events = [(e.step, e.status) for e in app.events(run_id)]
    assert events == [
        (None, "PENDING"),
        (None, "RUNNING"),
        ("build", "RUNNING"),
        ("build", "COMPLETED"),
        ("check", "RUNNING"),
        ("check", "COMPLETED"),
        ("ship", "RUNNING"),
        ("ship", "COMPLETED"),
        (None, "SUCCEEDED"),
    ]
    assert [(line.step, line.message) for line in app.logs(run_id)] == [("build", "building prod")]


async def test_declared_output_returning_none_fails_with_clear_error(
    app: App, worker: Worker
) -> None:
    """A step that declares an output type and returns None fails the run."""

    @step(output=Artifact)
    def broken(ctx: StepContext, p: Params) -> Any:
        return None

    app.register(Pipeline("nil", [broken], params=Params))
    run_id = await run(app, worker, "nil", {"env": "x"})
    view = app.get_run(run_id)
    assert view.run.status == RunStatus.FAILED
    assert "declares output Artifact but returned None" in (view.steps[0].error or "")


async def test_pre_and_post_hooks_transform_the_value(app: App, worker: Worker) -> None:
    """Pre-hooks change the input, post-hooks the output; a raising hook fails the step."""

    def double(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
        return {"n": v["n"] * 2}

    def plus_one(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
        return {"n": v["n"] + 1}

    @step(pre_hooks=[double], post_hooks=[plus_one])
    def compute(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
        return {"n": v["n"] * 10}

    def refuse(ctx: StepContext, v: Any) -> Any:
        raise ValueError("input refused by pre-hook")

    app.register(
        Pipeline("hooked", [compute]),
        Pipeline("refused", [compute.extend(pre_hooks=[refuse]).rename("guarded")]),
    )
    ok = await run(app, worker, "hooked", {"n": 2})
    assert app.get_run(ok).steps[0].output == {"n": 41}
    bad = await run(app, worker, "refused", {"n": 2})
    view = app.get_run(bad)
    assert view.run.status == RunStatus.FAILED
    assert "input refused by pre-hook" in (view.steps[0].error or "")


async def test_retry_parks_the_run_durably_between_attempts(app: App, worker: Worker) -> None:
    """A failed attempt parks the run WAITING with a wake-up time and no lease held."""
    attempts: list[int] = []
    gate = asyncio.Event()

    @step(retry=Retry(attempts=3, backoff=0.4, jitter=0))
    async def flaky(ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            gate.set()
            raise ConnectionError("upstream refused")

    app.register(Pipeline("flaky", [flaky]))
    record = app.start_run("flaky")
    worker.wake()
    await asyncio.wait_for(gate.wait(), 10)
    parked = await wait_status(app, record.id, RunStatus.WAITING)
    assert parked.lease_owner is None and parked.wake_at is not None
    await eventually_async(lambda: worker.active == 0, "the worker to hold nothing")
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.SUCCEEDED
    assert attempts == [1, 2]
    retrying = [e for e in app.events(record.id) if e.status == "RETRYING"]
    assert retrying and "upstream refused" in (retrying[0].message or "")


async def test_retries_exhausted_fail_the_run_and_only_listed_errors_retry(
    app: App, worker: Worker
) -> None:
    """Attempts stop at the policy's count; errors outside ``on`` fail at once."""
    calls = {"a": 0, "b": 0}

    @step(retry=Retry(attempts=2, backoff=0.01))
    def always(ctx: StepContext) -> None:
        calls["a"] += 1
        raise RuntimeError("still broken")

    @step(retry=Retry(attempts=5, backoff=0.01, on=(ConnectionError,)))
    def wrong_kind(ctx: StepContext) -> None:
        calls["b"] += 1
        raise ValueError("not retryable")

    app.register(Pipeline("always", [always]), Pipeline("wrong", [wrong_kind]))
    a = await run(app, worker, "always")
    b = await run(app, worker, "wrong")
    assert app.get_run(a).run.status == RunStatus.FAILED
    assert app.get_run(b).run.status == RunStatus.FAILED
    assert calls == {"a": 2, "b": 1}
    assert [e.kind for e in app.errors(a)] == ["builtins.RuntimeError"] * 2


async def test_error_handlers_ignore_or_recover(app: App, worker: Worker) -> None:
    """``ignore`` passes the input on; a custom handler's value becomes the output."""

    @step(on_error="ignore")
    def optional(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
        raise RuntimeError("cosmetic failure")

    def fallback(ctx: StepContext, v: dict[str, int], err: BaseException) -> dict[str, int]:
        return {"n": -1, "why": len(str(err))}

    @step(on_error=fallback)
    def risky(ctx: StepContext, v: dict[str, int]) -> dict[str, int]:
        raise RuntimeError("boom")

    app.register(Pipeline("handled", [optional, risky]))
    run_id = await run(app, worker, "handled", {"n": 5})
    view = app.get_run(run_id)
    assert view.run.status == RunStatus.SUCCEEDED
    assert view.steps[0].output == {"n": 5}
    assert view.steps[1].output == {"n": -1, "why": 4}
    handled = [e for e in app.events(run_id) if e.status == "ERROR_HANDLED"]
    assert [e.step for e in handled] == ["optional", "risky"]


async def test_failure_rolls_back_completed_steps_in_reverse_with_saved_data(
    app: App, worker: Worker
) -> None:
    """The failed step's rollback, then each completed step's, newest first, with ctx.load()."""
    undone: list[tuple[str, Any, Any]] = []

    def make(name: str, fail: bool = False) -> Any:
        @step(name=name)
        def body(ctx: StepContext, v: dict[str, Any]) -> dict[str, Any]:
            ctx.save({"created": f"{name}-resource"})
            if fail:
                raise RuntimeError(f"{name} exploded")
            return {**v, name: True}

        @body.rollback
        def undo(ctx: StepContext, v: dict[str, Any]) -> None:
            undone.append((name, ctx.load(), v))

        return body

    app.register(Pipeline("chain", [make("a"), make("b"), make("c", fail=True), make("d")]))
    run_id = await run(app, worker, "chain", {})
    view = app.get_run(run_id)
    assert view.run.status == RunStatus.ROLLED_BACK
    assert "c exploded" in (view.run.error or "")
    assert undone == [
        ("c", {"created": "c-resource"}, {"a": True, "b": True}),
        ("b", {"created": "b-resource"}, {"a": True}),
        ("a", {"created": "a-resource"}, {}),
    ]
    assert statuses(app, run_id) == {
        "a": "ROLLED_BACK",
        "b": "ROLLED_BACK",
        "c": "ROLLED_BACK",
        "d": "NOT_STARTED",
    }


async def test_a_raising_rollback_is_recorded_and_the_others_still_run(
    app: App, worker: Worker
) -> None:
    """One rollback raising ends the run ROLLBACK_FAILED after every other rollback ran."""
    undone: list[str] = []

    @step
    def first(ctx: StepContext) -> None:
        pass

    @first.rollback
    def undo_first(ctx: StepContext) -> None:
        undone.append("first")

    @step
    def second(ctx: StepContext) -> None:
        pass

    @second.rollback
    def undo_second(ctx: StepContext) -> None:
        raise RuntimeError("cannot undo second")

    @step
    def third(ctx: StepContext) -> None:
        raise RuntimeError("third failed")

    app.register(Pipeline("partial", [first, second, third]))
    run_id = await run(app, worker, "partial")
    assert app.get_run(run_id).run.status == RunStatus.ROLLBACK_FAILED
    assert undone == ["first"]
    assert statuses(app, run_id)["second"] == "ROLLBACK_FAILED"
    assert any("cannot undo second" in e.message for e in app.errors(run_id))


async def test_step_timeout_fails_the_attempt(app: App, worker: Worker) -> None:
    """A step past its timeout fails with a timeout error (then retries by policy)."""
    starts: list[int] = []

    @step(timeout=0.1, retry=Retry(attempts=2, backoff=0.01))
    async def slow(ctx: StepContext) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(5)

    app.register(Pipeline("slow", [slow]))
    run_id = await run(app, worker, "slow")
    view = app.get_run(run_id)
    assert view.run.status == RunStatus.FAILED
    assert starts == [1, 2]
    assert "timed out after 0.1s" in (view.steps[0].error or "")


async def test_cancel_stops_the_running_step_and_rolls_back(app: App, worker: Worker) -> None:
    """Cancelling interrupts an async step at once; completed steps roll back; CANCELLED."""
    started = asyncio.Event()
    undone: list[str] = []

    @step
    def prepare(ctx: StepContext) -> None:
        pass

    @prepare.rollback
    def unprepare(ctx: StepContext) -> None:
        undone.append("prepare")

    @step
    async def wait_forever(ctx: StepContext) -> None:
        started.set()
        await asyncio.sleep(60)

    @wait_forever.rollback
    def undo_wait(ctx: StepContext) -> None:
        undone.append("wait_forever")

    app.register(Pipeline("long", [prepare, wait_forever]))
    record = app.start_run("long")
    worker.wake()
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.to_thread(app.acting("alice").cancel_run, record.id)
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.CANCELLED
    assert undone == ["wait_forever", "prepare"]
    assert statuses(app, record.id)["wait_forever"] == "ROLLED_BACK"
    kinds = [e.status for e in app.events(record.id)]
    assert "CANCEL_REQUESTED" in kinds and kinds[-1] == "CANCELLED"


async def test_sync_step_sees_cancellation_through_ctx(app: App, worker: Worker) -> None:
    """A sync step running in a thread observes ``ctx.cancelled`` and stops."""
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    observed: list[bool] = []

    @step
    def poll(ctx: StepContext) -> None:
        loop.call_soon_threadsafe(started.set)
        while not ctx.cancelled:
            ctx.cancel_event.wait(0.01)
        observed.append(True)
        ctx.raise_if_cancelled()

    app.register(Pipeline("poll", [poll]))
    record = app.start_run("poll")
    worker.wake()
    await asyncio.wait_for(started.wait(), 10)
    app.cancel_run(record.id)
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.CANCELLED
    await eventually_async(lambda: observed == [True], "the step to see the cancel", 5)


async def test_cancel_of_a_finished_run_is_refused(app: App, worker: Worker) -> None:
    """Only active runs can be cancelled; unknown ids are not found."""
    from lockgate import InvalidState, RunNotFound

    @step
    def noop(ctx: StepContext) -> None:
        pass

    app.register(Pipeline("quick", [noop]))
    run_id = await run(app, worker, "quick")
    with pytest.raises(InvalidState, match="SUCCEEDED"):
        app.cancel_run(run_id)
    with pytest.raises(RunNotFound):
        app.cancel_run("nope")


async def test_dry_run_flag_reaches_steps_and_hooks(app: App, worker: Worker) -> None:
    """``noop`` runs tell every step and hook; the log is the plan."""
    seen: list[tuple[str, bool]] = []

    @step
    def deploy(ctx: StepContext) -> None:
        seen.append(("step", ctx.noop))
        if ctx.noop:
            ctx.log.info("would deploy")

    pipeline = Pipeline("plan", [deploy])

    @pipeline.hook("run_started")
    def on_start(event: HookEvent) -> None:
        seen.append(("hook", event.noop))

    app.register(pipeline)
    run_id = await run(app, worker, "plan", noop=True)
    assert seen == [("hook", True), ("step", True)]
    assert [line.message for line in app.logs(run_id)] == ["would deploy"]
    assert app.get_run(run_id).run.noop is True


async def test_lifecycle_hooks_fire_in_order_and_share_the_context_bag(
    app: App, worker: Worker
) -> None:
    """Hooks at each point see and change the bag, which is checkpointed with the run."""
    calls: list[str] = []

    @step
    def one(ctx: StepContext) -> None:
        ctx.bag["seen_by_step"] = ctx.bag.get("started_by")

    @step
    def two(ctx: StepContext) -> None:
        raise RuntimeError("two broke")

    pipeline = Pipeline("hooks", [one, two])

    def record(event: HookEvent) -> None:
        calls.append(f"{event.point.value}:{event.step or '-'}")
        if event.point == "run_started":
            event.context["started_by"] = "hook"

    async def second_in_chain(event: HookEvent) -> None:
        if event.point == "run_finished":
            calls.append(f"chained:{event.status}")

    for point in (
        "run_started",
        "step_started",
        "step_completed",
        "step_failed",
        "rolling_back",
        "run_finished",
    ):
        pipeline.hook(point)(record)
    pipeline.hook("run_finished")(second_in_chain)
    app.register(pipeline)
    run_id = await run(app, worker, "hooks")
    assert calls == [
        "run_started:-",
        "step_started:one",
        "step_completed:one",
        "step_started:two",
        "step_failed:two",
        "rolling_back:-",
        "run_finished:-",
        "chained:FAILED",
    ]
    assert app.get_run(run_id).run.context == {"started_by": "hook", "seen_by_step": "hook"}


async def test_idempotency_key_starts_a_run_once(app: App) -> None:
    """Starting twice with the same key returns the first run."""

    @step
    def noop(ctx: StepContext) -> None:
        pass

    app.register(Pipeline("once", [noop]))
    a = app.start_run("once", idempotency_key="delivery-1")
    b = app.start_run("once", idempotency_key="delivery-1")
    c = app.start_run("once", idempotency_key="delivery-2")
    assert a.id == b.id != c.id


async def test_bad_params_are_refused_with_every_problem(app: App) -> None:
    """Missing and mistyped params are all listed; nothing is created."""
    from lockgate import ParamsError

    @step
    def noop(ctx: StepContext) -> None:
        pass

    app.register(Pipeline("typed", [noop], params=Params))
    with pytest.raises(ParamsError) as info:
        app.start_run("typed", {"replicas": "many"})
    assert info.value.problems == [
        "env: Field required",
        "replicas: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert app.list_runs() == []


async def test_concurrent_runs_share_commits(app: App, worker: Worker) -> None:
    """Checkpoints of concurrent runs are group-committed: fewer transactions than writes."""

    @step
    async def a(ctx: StepContext) -> None:
        await asyncio.sleep(0)

    @step
    async def b(ctx: StepContext) -> None:
        await asyncio.sleep(0)

    app.register(Pipeline("many", [a, b]))
    ids = [app.start_run("many").id for _ in range(40)]
    worker.wake()
    for rid in ids:
        assert (await app.wait(rid, timeout=20)).status == RunStatus.SUCCEEDED
    assert worker.committer.batches < worker.committer.ops


async def test_log_file_mirror_uses_safe_names(app: App, tmp_path: Any) -> None:
    """Each step's log is mirrored to <log_dir>/<run>/<step>.log with the name made safe."""
    log_dir = tmp_path / "logs"

    @step(name="../../etc/passwd")
    def sneaky(ctx: StepContext) -> None:
        ctx.log.info("hello %s", "file")

    app.register(Pipeline("mirror", [sneaky]))
    w = app.worker(log_dir=log_dir)
    await w.start()
    try:
        run_id = await run(app, w, "mirror")
    finally:
        await w.stop()
    files = list(log_dir.rglob("*.log"))
    assert [f.relative_to(log_dir).as_posix() for f in files] == [f"{run_id}/_.._etc_passwd.log"]
    assert "hello file" in files[0].read_text()


async def test_durable_sleep_parks_the_run_without_holding_a_worker(
    app: App, worker: Worker
) -> None:
    """ctx.sleep parks the run WAITING in the store; the worker holds nothing; it resumes."""
    bodies: list[float] = []

    @step
    def pause(ctx: StepContext) -> None:
        bodies.append(time.time())
        ctx.log.info("before the sleep")
        ctx.sleep(1.5)
        ctx.log.info("after the sleep")

    app.register(Pipeline("pause", [pause]))
    started = time.time()
    records = [app.start_run("pause") for _ in range(50)]

    def parked() -> bool:
        runs = [app.get_run(r.id).run for r in records]
        return all(r.status == RunStatus.WAITING and r.lease_owner is None for r in runs)

    await eventually_async(parked, "every run parked, its lease let go", 10)
    # The runs' tasks end just after their commits.
    await eventually_async(lambda: worker.active == 0, "the worker to hold nothing", 10)
    assert app.get_run(records[0].id).steps[0].status == "WAITING"
    for r in records:
        assert (await app.wait(r.id, timeout=10)).status == RunStatus.SUCCEEDED
    assert time.time() - started >= 1.5
    assert len(bodies) == 100  # each body ran twice: before parking and on wake-up
    messages = [line.message for line in app.logs(records[0].id)]
    assert messages[-1] == "after the sleep" and messages.count("before the sleep") == 2
    assert app.get_run(records[0].id).steps[0].attempt == 1


async def test_cancel_wakes_a_sleeping_run_to_roll_back(app: App, worker: Worker) -> None:
    """A cancel does not wait for the sleep to end: the run rolls back at once."""
    undone: list[str] = []

    @step
    def long_pause(ctx: StepContext) -> None:
        ctx.sleep(3600)

    @long_pause.rollback
    def undo(ctx: StepContext) -> None:
        undone.append("long_pause")

    app.register(Pipeline("nap", [long_pause]))
    record = app.start_run("nap")
    waiting = lambda: app.get_run(record.id).run.status == RunStatus.WAITING  # noqa: E731
    await eventually_async(waiting, f"run {record.id} to sleep", 10)
    app.cancel_run(record.id)
    done = await app.wait(record.id, timeout=5)
    assert done.status == RunStatus.CANCELLED
    assert undone == ["long_pause"]


async def test_sleep_in_a_non_idempotent_step_is_refused(app: App, worker: Worker) -> None:
    """A non-idempotent step cannot park: its body would run twice."""

    @step(idempotent=False)
    def once(ctx: StepContext) -> None:
        ctx.sleep(1)

    app.register(Pipeline("once-sleep", [once]))
    record = app.start_run("once-sleep")
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert "marked idempotent=False" in (app.get_run(record.id).steps[0].error or "")


class Target(BaseModel):
    environment: str = "staging"


async def test_a_misspelt_param_is_refused_not_ignored(app: App) -> None:
    """``-p enviroment=production`` must not deploy to the default (staging): an unknown
    param is refused, naming it and the known ones, for Python pipelines too."""

    @step
    def ship(ctx: StepContext, t: Target) -> None:
        ctx.log.info("shipping to %s", t.environment)

    app.register(Pipeline("ship", [ship], params=Target))
    with pytest.raises(ParamsError) as info:
        app.start_run("ship", {"enviroment": "production"})
    assert info.value.problems == ["enviroment: unknown param (known: environment)"]
    assert app.list_runs() == []


@pytest.mark.parametrize("wait", ["approval", "sleep", "retry"])
async def test_a_cancel_ends_a_parked_step_cancelled(
    app: App, worker: Worker, tmp_path: Any, wait: str
) -> None:
    """Threat: a cancelled run whose parked step stays WAITING (shown as waiting, woken
    later). The step ends CANCELLED with its event, its rollback runs, and a later wake-up
    or decision changes nothing."""
    from lockgate.specs import load_file

    undone: list[str] = []

    @step
    def sleepy(ctx: StepContext) -> None:
        ctx.sleep(3600)

    @step(retry=Retry(attempts=3, backoff=3600, jitter=0))
    def flaky(ctx: StepContext) -> None:
        raise ConnectionError("the service is down")

    for s_ in (sleepy, flaky):
        s_.rollback(lambda ctx, name=s_.name: undone.append(name))
    if wait == "approval":
        path = tmp_path / "gate.yaml"
        path.write_text(
            "name: parked\nsteps:\n  - name: gate\n    kind: approval\n    required: 1\n"
        )
        app.register(load_file(path))
        name = "gate"
    else:
        app.register(Pipeline("parked", [sleepy if wait == "sleep" else flaky]))
        name = "sleepy" if wait == "sleep" else "flaky"
    record = app.start_run("parked")
    deadline = time.monotonic() + 10
    while app.get_run(record.id).run.status != RunStatus.WAITING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    app.acting("alice").cancel_run(record.id)
    done = await app.wait(record.id, timeout=10)
    assert done.status == RunStatus.CANCELLED
    view = app.get_run(record.id)
    [parked] = view.steps
    events = [(e.step, e.status) for e in app.events(record.id)]
    ends = [status for step_, status in events if step_ == name][-3:]
    assert events[-1] == (None, "CANCELLED")
    if wait != "approval":  # cancelled, then undone
        assert ends == ["CANCELLED", "ROLLING_BACK", "ROLLED_BACK"]
        assert undone == [name] and parked.status == "ROLLED_BACK"
    else:
        assert ends[-1] == "CANCELLED" and parked.status == "CANCELLED"
        assert "cancelled" in (parked.error or "")
        assert app.approvals() == []
        with pytest.raises(InvalidState, match="CANCELLED"):
            app.acting("ops").decide(record.id, "approve")
    # Nothing wakes it again.
    await asyncio.sleep(0.3)
    assert app.get_run(record.id).steps[0].status == parked.status
    assert len(app.events(record.id)) == len(events)
