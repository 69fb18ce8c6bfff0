"""The built-in step kinds against real subprocesses, through pipeline files."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from lockgate import App, RunStatus, Settings
from lockgate.specs import load_file
from lockgate.testing import eventually

ECHO_ARGS = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def pipeline_file(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def python_command(tmp_path: Path, pipeline: str, step: str, code: str) -> Path:
    """A pipeline of one shell step that runs ``code`` with this Python."""
    argv = json.dumps([sys.executable, "-c", code])
    body = f"name: {pipeline}\nsteps:\n  - name: {step}\n    kind: shell\n    argv: {argv}\n"
    return pipeline_file(tmp_path, body)


async def run_file(app: App, path: Path, params: Any = None, **kw: Any) -> Any:
    pipeline = load_file(path, secret_names=app.settings.secrets.__contains__)
    app.register(pipeline)
    return await app.execute_async(pipeline.name, params, timeout=30, **kw)


@pytest.mark.parametrize(
    "payload",
    ["; id", "$(id)", "`id`", "a\nb", "--help", "${secrets.X}", "{0.__class__}", "{{7*7}}", "' \""],
)
async def test_shell_arguments_arrive_literally(app: App, tmp_path: Path, payload: str) -> None:
    """Params reach the command as argv elements: no shell, no evaluation, no expansion."""
    path = pipeline_file(
        tmp_path,
        f"""
name: echo
params: {{payload: {{type: string, required: true}}}}
steps:
  - name: echo
    kind: shell
    argv: {json.dumps([*ECHO_ARGS, "${payload}", "x${payload}x"])}
    allow_option_values: true
""",
    )
    done = await run_file(app, path, {"payload": payload})
    assert done.status == RunStatus.SUCCEEDED
    output = app.get_run(done.id).steps[0].output
    assert json.loads(output["stdout"]) == [payload, f"x{payload}x"]
    assert output["exit_code"] == 0


async def test_an_outside_value_cannot_become_an_option(app: App, tmp_path: Path) -> None:
    """Threat: argument injection (``--upload-pack=...``). A param that opens an argv element
    with ``-`` is refused unless the step allows it; inside an element it is harmless."""
    path = pipeline_file(
        tmp_path,
        f"""
name: fetch
params: {{ref: {{type: string, required: true}}}}
steps:
  - name: fetch
    kind: shell
    argv: {json.dumps([*ECHO_ARGS, "${ref}"])}
""",
    )
    done = await run_file(app, path, {"ref": "--upload-pack=touch /tmp/owned"})
    assert done.status == RunStatus.FAILED
    error = app.get_run(done.id).steps[0].error or ""
    assert "could be read as an option" in error
    ok = await run_file(app, path, {"ref": "main"})
    assert ok.status == RunStatus.SUCCEEDED


async def test_a_templated_cwd_stays_in_the_run_workspace(
    app: App, tmp_path: Path, settings: Settings
) -> None:
    """Threat: path traversal. A cwd with placeholders is resolved from the run's
    workspace; ``..`` out of it is refused."""
    path = pipeline_file(
        tmp_path,
        """
name: inside
params: {dir: {type: string, required: true}}
steps:
  - name: where
    kind: shell
    argv: [pwd]
    cwd: "${dir}"
""",
    )
    done = await run_file(app, path, {"dir": "build/out"})
    assert done.status == RunStatus.SUCCEEDED
    workspace = (settings.workspace_dir / done.id).resolve()
    assert app.get_run(done.id).steps[0].output["stdout"] == str(workspace / "build" / "out")
    escaped = await run_file(app, path, {"dir": "../../etc"})
    assert escaped.status == RunStatus.FAILED
    assert "leaves the run's workspace" in (app.get_run(escaped.id).steps[0].error or "")


async def test_a_line_longer_than_64_kib_is_cut_not_fatal(app: App, tmp_path: Path) -> None:
    """A command printing one huge line does not fail its step; the log line is cut."""
    path = python_command(tmp_path, "huge", "print", "print('y' * 200000); print('after')")
    done = await run_file(app, path)
    assert done.status == RunStatus.SUCCEEDED
    lines = [line.message for line in app.logs(done.id, "print")]
    huge = next(line for line in lines if line.startswith("yyy"))
    assert huge.endswith("[line cut at 65536 bytes]") and len(huge) < 66000
    assert "after" in lines


async def test_numbers_and_booleans_become_argv_text(app: App, tmp_path: Path) -> None:
    """A lone placeholder of a number or boolean is passed as its JSON text."""
    path = pipeline_file(
        tmp_path,
        f"""
name: typed
params: {{n: {{type: integer, default: 3}}, flag: {{type: boolean, default: true}}}}
steps:
  - name: echo
    kind: shell
    argv: {json.dumps([*ECHO_ARGS, "${n}", "${flag}"])}
    env: {{N: "${{n}}"}}
""",
    )
    done = await run_file(app, path)
    assert json.loads(app.get_run(done.id).steps[0].output["stdout"]) == ["3", "true"]


async def test_shell_failure_fails_the_step_and_output_streams_to_the_log(
    app: App, tmp_path: Path
) -> None:
    """A non-zero exit fails the step; stdout and stderr lines are in the step's log."""
    path = pipeline_file(
        tmp_path,
        """
name: fails
steps:
  - name: broken
    kind: shell
    argv: [sh, -c, 'echo to-stdout; echo to-stderr >&2; exit 3']
""",
    )
    done = await run_file(app, path)
    assert done.status == RunStatus.FAILED
    assert "exited with status 3" in (app.get_run(done.id).steps[0].error or "")
    lines = [(line.level, line.message) for line in app.logs(done.id)]
    assert ("info", "to-stdout") in lines and ("warning", "to-stderr") in lines


async def test_shell_timeout_kills_the_whole_process_group(app: App, tmp_path: Path) -> None:
    """A timed-out command and the children it started are all killed."""
    pids = tmp_path / "pids"
    path = pipeline_file(
        tmp_path,
        f"""
name: hang
steps:
  - name: hang
    kind: shell
    timeout: 0.5
    argv: [sh, -c, 'sleep 30 & echo $! > {pids}; echo $$ >> {pids}; wait']
""",
    )
    done = await run_file(app, path)
    assert done.status == RunStatus.FAILED
    assert "timed out after 0.5s" in (app.get_run(done.id).steps[0].error or "")
    started = [int(p) for p in pids.read_text().split()]
    gone = lambda: not [p for p in started if _alive(p)]  # noqa: E731
    eventually(gone, "the step's processes to end", 5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


async def test_dry_run_shell_runs_nothing(app: App, tmp_path: Path) -> None:
    """In a dry run the command is only logged."""
    marker = tmp_path / "touched"
    path = pipeline_file(
        tmp_path,
        f"name: plan\nsteps:\n  - name: touch\n    kind: shell\n    argv: [touch, '{marker}']\n",
    )
    done = await run_file(app, path, noop=True)
    assert done.status == RunStatus.SUCCEEDED
    assert not marker.exists()
    assert "would run" in app.logs(done.id)[0].message


async def test_python_and_sleep_steps_with_outputs_and_placeholders(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A python step gets its rendered input; a sleep parks; later steps read outputs."""
    name = f"kind_helpers_{uuid.uuid4().hex[:8]}"  # one per test: modules are cached
    module = tmp_path / f"{name}.py"
    module.write_text(
        "def build(ctx, value):\n"
        "    ctx.log.info('building %s', value['service'])\n"
        "    return {'image': value['service'] + ':' + str(value['n'])}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = pipeline_file(
        tmp_path,
        f"""
name: mixed
params:
  service: {{type: string, required: true}}
  n: {{type: integer, default: 7}}
steps:
  - name: build
    kind: python
    function: {name}:build
    input: {{service: "${{service}}", n: "${{n}}"}}
  - name: pause
    kind: sleep
    seconds: 0.3
  - name: show
    kind: shell
    argv: {json.dumps([*ECHO_ARGS, "${steps.build.image}", "${run.requested_by}"])}
""",
    )
    started = time.monotonic()
    done = await run_file(app.acting("alice"), path, {"service": "web"})
    assert done.status == RunStatus.SUCCEEDED, app.get_run(done.id).steps[0].error
    assert time.monotonic() - started >= 0.3
    steps = app.get_run(done.id).steps
    assert steps[0].output == {"image": "web:7"}
    assert json.loads(steps[2].output["stdout"]) == ["web:7", "alice"]


async def test_rollback_step_runs_with_outputs(app: App, tmp_path: Path) -> None:
    """A failing step rolls back earlier steps' ``rollback:`` steps, which see outputs."""
    undo = tmp_path / "undo.txt"
    path = pipeline_file(
        tmp_path,
        f"""
name: undo
steps:
  - name: create
    kind: shell
    argv: [echo, resource-42]
    rollback:
      kind: shell
      argv: [sh, -c, 'echo "$1" > {undo}', sh, "${{steps.create.stdout}}"]
  - name: fail
    kind: shell
    argv: ["false"]
""",
    )
    done = await run_file(app, path)
    assert done.status == RunStatus.ROLLED_BACK
    assert undo.read_text().strip() == "resource-42"


async def test_a_secret_never_reaches_the_store_or_log_files(
    settings: Settings, tmp_path: Path
) -> None:
    """A secret used by a step is masked everywhere: every table and every log file."""
    secret = "hunter2-very-secret"
    log_dir = tmp_path / "logs"
    app = App(settings.with_(secrets={"TOKEN": secret}, log_dir=log_dir))
    path = pipeline_file(
        tmp_path,
        f"""
name: leak
steps:
  - name: use
    kind: shell
    argv: {json.dumps([*ECHO_ARGS, "${secrets.TOKEN}", "Bearer ${secrets.TOKEN}"])}
  - name: fail
    kind: shell
    argv: [sh, -c, 'echo "token is $T" >&2; exit 1']
    env: {{T: "${{secrets.TOKEN}}"}}
    retry: {{attempts: 2, backoff: 0}}
""",
    )
    try:
        done = await run_file(app, path)
        assert done.status == RunStatus.FAILED
        dump = _dump_database(app)
        assert secret not in dump and "***" in dump
        files = "".join(p.read_text() for p in log_dir.rglob("*.log"))
        assert files and secret not in files
    finally:
        app.close()


def _dump_database(app: App) -> str:
    meta = MetaData()
    meta.reflect(app.store._reader_engine)
    with app.store._reader_engine.connect() as conn:
        rows = [r for t in meta.sorted_tables for r in conn.execute(select(t)).all()]
    return json.dumps([list(map(str, r)) for r in rows])


async def test_bad_params_for_a_file_pipeline_list_every_problem(app: App, tmp_path: Path) -> None:
    """Params declared in a file are checked: type, enum, pattern, required, unknown."""
    from lockgate import ParamsError

    path = pipeline_file(
        tmp_path,
        """
name: typed-params
params:
  service: {type: string, required: true, pattern: "^[a-z]+$"}
  env: {type: string, enum: [staging, prod]}
  replicas: {type: integer, minimum: 1}
steps:
  - name: s
    kind: sleep
    seconds: 0
""",
    )
    app.register(load_file(path))
    with pytest.raises(ParamsError) as info:
        app.start_run("typed-params", {"env": "dev", "replicas": 0, "colour": "red"})
    assert info.value.problems == [
        "colour: unknown param (known: env, replicas, service)",
        "service: Field required",
        "env: Input should be 'staging' or 'prod'",
        "replicas: Input should be greater than or equal to 1",
    ]
    ok = app.start_run("typed-params", {"service": "web", "replicas": "3"})
    assert ok.params == {"service": "web", "env": None, "replicas": 3}


async def test_a_step_past_its_log_budget_is_cut_with_a_marker(
    settings: Settings, tmp_path: Path
) -> None:
    """Threat: a step filling the store with logs. Past the per-step budget (a setting) one
    marker line is written and the rest dropped; the step itself goes on."""
    app = App(settings.with_(log_max_lines=5))
    try:
        path = python_command(tmp_path, "chatty", "talk", "for i in range(50): print(f'line {i}')")
        done = await run_file(app, path)
        assert done.status == RunStatus.SUCCEEDED
        lines = [line.message for line in app.logs(done.id, "talk")]
        assert lines[1:5] == ["line 0", "line 1", "line 2", "line 3"]
        assert len(lines) == 6 and lines[-1].startswith("log truncated")
    finally:
        app.close()


async def test_a_python_step_calls_only_the_pipelines_own_functions(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threat: a pipeline file calling any library function (``subprocess:getoutput``).
    A python step may call the pipeline's own modules (under its file's directory), or
    modules allowed in settings (``LOCKGATE_PYTHON_ALLOW``); nothing else."""
    lib, pipes = tmp_path / "lib", tmp_path / "pipes"
    lib.mkdir()
    pipes.mkdir()
    name = f"shared_{uuid.uuid4().hex[:8]}"
    (lib / f"{name}.py").write_text("def greet(ctx, value):\n    return {'hi': value}\n")
    monkeypatch.syspath_prepend(str(lib))
    for function in ("json:loads", f"{name}:greet"):
        path = pipeline_file(
            pipes,
            f"name: borrowed\nsteps:\n  - name: call\n    kind: python\n"
            f"    function: {function}\n    input: x\n",
        )
        app = App(settings)
        try:
            done = await run_file(app, path)
            assert done.status == RunStatus.FAILED
            error = app.get_run(done.id).steps[0].error or ""
            assert "not in the pipeline's own modules" in error
        finally:
            app.close()
    allowed = App(settings.with_(python_allow=(name,)))
    try:
        done = await run_file(allowed, path)
        assert done.status == RunStatus.SUCCEEDED, allowed.get_run(done.id).steps[0].error
        assert allowed.get_run(done.id).steps[0].output == {"hi": "x"}
    finally:
        allowed.close()
