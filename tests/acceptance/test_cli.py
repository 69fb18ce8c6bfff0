"""The real ``lockgate`` command in subprocesses: output, exit codes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")


def lockgate(
    db_url: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LOCKGATE_DATABASE_URL": db_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> dict[str, str]:
    return {"LOCKGATE_LEDGER": str(tmp_path / "ledger.txt"), "LOCKGATE_SLOW_SECONDS": "0"}


def test_run_wait_prints_the_finished_run_as_json(db_url: str, ledger: dict[str, str]) -> None:
    """``run --wait -o json`` runs the pipeline here and prints the final run; exit 0."""
    out = lockgate(
        db_url,
        *("run", "crashy", "--pipelines", PIPELINES, "--wait", "-o", "json"),
        *("--context", "ticket=CHG-1"),
        env=ledger,
    )
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["status"] == "SUCCEEDED"
    assert run["context"]["ticket"] == "CHG-1"  # --context: the bag's first values
    pruned = lockgate(db_url, "db", "prune", "--dry-run", "-o", "json")
    assert json.loads(pruned.stdout) == {"dry_run": True, "runs": {}, "total": 0}
    assert run["steps"][-1]["output"] == {"prepared": 1, "slow": 1, "finished": 1}
    listed = lockgate(db_url, "runs", "list", "-o", "json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run["id"]]
    shown = lockgate(db_url, "runs", "show", run["id"], "-o", "json")
    assert [e["status"] for e in json.loads(shown.stdout)["events"]][-1] == "SUCCEEDED"


def test_failed_run_exits_non_zero(db_url: str, ledger: dict[str, str]) -> None:
    """A run that fails makes ``run --wait`` exit 1 and shows the error."""
    out = lockgate(db_url, "run", "failing", "--pipelines", PIPELINES, "--wait", env=ledger)
    assert out.returncode == 1
    assert "always fails" in out.stdout


def test_bad_params_are_all_listed_with_exit_code_2(db_url: str) -> None:
    """Malformed -p values are refused, each one named."""
    out = lockgate(db_url, "run", "crashy", "--pipelines", PIPELINES, "-p", "novalue", "-p", "=x")
    assert out.returncode == 2
    assert "'novalue': expected key=value" in out.stderr
    assert "'=x': expected key=value" in out.stderr


def test_unknown_ids_and_names_are_clear_errors(db_url: str) -> None:
    """Unknown run ids and pipelines exit 3 with a one-line error; no traceback."""
    out = lockgate(db_url, "runs", "show", "does-not-exist")
    assert out.returncode == 3
    assert "error (not_found): no run 'does-not-exist'" in out.stderr
    assert "Traceback" not in out.stderr
    out = lockgate(db_url, "run", "nothing-here")
    assert out.returncode == 3 and "no pipeline" in out.stderr


def test_cancel_of_a_finished_run_exits_4(db_url: str, ledger: dict[str, str]) -> None:
    """Cancelling a finished run is a state conflict."""
    done = lockgate(
        db_url, "run", "crashy", "--pipelines", PIPELINES, "--wait", "-o", "json", env=ledger
    )
    run_id = json.loads(done.stdout)["id"]
    out = lockgate(db_url, "runs", "cancel", run_id)
    assert out.returncode == 4
    assert "only an active run can be cancelled" in out.stderr


def test_bad_pipeline_file_is_refused_with_its_path(db_url: str, tmp_path: Path) -> None:
    """A pipeline module that fails to import names the file and the problem."""
    bad = tmp_path / "bad.py"
    bad.write_text("from lockgate import Pipeline\np = Pipeline('x', [])\n")
    out = lockgate(db_url, "run", "x", "--pipelines", str(bad))
    assert out.returncode == 2
    assert f"{bad}: pipeline 'default/x': a pipeline needs at least one step" in out.stderr


def test_help_describes_every_command() -> None:
    """``--help`` lists the commands."""
    out = subprocess.run(
        [sys.executable, "-m", "lockgate", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("server", "worker", "run", "runs", "db", "pipelines"):
        assert command in out.stdout


def test_logs_reach_the_terminal_without_escape_sequences(db_url: str, tmp_path: Path) -> None:
    """Threat: a command's output driving the operator's terminal (colours, titles, cursor
    moves): ``runs logs`` strips escape sequences and control characters."""
    pipeline = tmp_path / "esc.yaml"
    argv = [sys.executable, "-c", r"print('\x1b]0;owned\x07\x1b[2Jplain\x1b[31mred')"]
    pipeline.write_text(
        "name: esc\nsteps:\n  - name: say\n    kind: shell\n    argv: " + json.dumps(argv) + "\n"
    )
    done = lockgate(db_url, "run", "esc", "--pipelines", str(pipeline), "--wait", "-o", "json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]
    shown = lockgate(db_url, "runs", "logs", run_id)
    assert "plainred" in shown.stdout and "\x1b" not in shown.stdout and "\x07" not in shown.stdout


#: ``-p tag=<the byte 0xff>``: what Python makes of bytes that are not UTF-8 in argv.
BAD = ("-p", "tag=\udcff")


def test_a_param_that_is_not_text_is_refused_with_exit_code_2(db_url: str) -> None:
    """Threat: bytes that are not UTF-8 on the command line reach Python as lone
    surrogates; ``-p`` refuses them (and a NUL-free argv cannot carry one) naming the
    param, exit 2, nothing started."""
    out = subprocess.run(
        [sys.executable, "-m", "lockgate", "run", "crashy", "--pipelines", PIPELINES, *BAD],
        capture_output=True,
        env={**os.environ, "LOCKGATE_DATABASE_URL": db_url},
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert b"params.tag" in out.stderr and b"lone surrogate" in out.stderr
    listed = lockgate(db_url, "runs", "list", "-o", "json")
    assert json.loads(listed.stdout) == []


def test_sessions_are_listed_and_ended_from_the_cli(db_url: str) -> None:
    """``lockgate sessions list`` shows who is signed in (never a cookie's hash);
    ``sessions revoke REF`` ends one; an unknown ref exits non-zero with a clear error."""
    from lockgate import App, Settings

    app = App(Settings(database_url=db_url))
    app.migrate()
    try:
        cookie, session = app.sessions.redeem(app.acting("t").sessions.make_link("admin", "ops"))
        listed = lockgate(db_url, "sessions", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        [shown] = json.loads(listed.stdout)
        assert shown["ref"] == session.ref and shown["subject"] == "ops"
        assert session.id not in listed.stdout and session.csrf not in listed.stdout
        ended = lockgate(db_url, "sessions", "revoke", session.ref)
        assert ended.returncode == 0 and "ended" in ended.stdout
        assert app.sessions.find(cookie) is None
        again = lockgate(db_url, "sessions", "revoke", session.ref)
        assert again.returncode != 0 and "no live session" in again.stderr
    finally:
        app.close()


def test_shell_steps_see_what_the_server_and_the_step_let_through(
    db_url: str, tmp_path: Path
) -> None:
    """kubectl, aws and git need KUBECONFIG, AWS_* and SSH_AUTH_SOCK: LOCKGATE_SHELL_ENV
    passes them to every shell step, ``inherit_env`` to one; nothing else of the host,
    never LOCKGATE_*, and a credential taken from the host is masked in the log."""
    pipeline = tmp_path / "kube.yaml"
    pipeline.write_text(
        "name: kube\n"
        "steps:\n"
        "  - name: look\n"
        "    kind: shell\n"
        "    argv: [sh, -c, 'env | sort; echo \"cfg=$${KUBECONFIG:-unset}\"']\n"
        "    inherit_env: [SSH_AUTH_SOCK]\n"
    )
    host = {
        "LOCKGATE_SHELL_ENV": "KUBECONFIG,AWS_*",
        "KUBECONFIG": "/etc/kube/prod.conf",
        "AWS_REGION": "eu-west-1",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-not-shown",
        "SSH_AUTH_SOCK": "/run/agent.sock",
        "UNLISTED_VARIABLE": "stays-home",
        "LOCKGATE_SECRET_DEPLOY": "lockgate-secret-value",
    }
    out = lockgate(
        db_url, "run", "kube", "--pipelines", str(pipeline), "--wait", "-o", "json", env=host
    )
    assert out.returncode == 0, out.stderr + out.stdout
    run = json.loads(out.stdout)
    logs = lockgate(db_url, "runs", "logs", run["id"], env=host)
    assert logs.returncode == 0, logs.stderr
    text = logs.stdout
    for seen in (
        "KUBECONFIG=/etc/kube/prod.conf",
        "AWS_REGION=eu-west-1",
        "SSH_AUTH_SOCK=/run/agent.sock",
        "cfg=/etc/kube/prod.conf",
        "AWS_SECRET_ACCESS_KEY=***",
    ):
        assert seen in text, seen
    for hidden in ("stays-home", "wJalrXUtnFEMI-not-shown", "lockgate-secret-value", "LOCKGATE_"):
        assert hidden not in text, hidden


def test_param_values_are_read_by_their_declared_type(db_url: str, tmp_path: Path) -> None:
    """``-p version=1.0`` was refused ("Input should be a valid string") because every
    value was parsed as JSON first. A string param keeps the text as typed; number,
    integer, boolean, array and object params take JSON; ``key:=<json>`` is always JSON."""
    pipeline = tmp_path / "release.yaml"
    pipeline.write_text(
        "name: release\n"
        "params:\n"
        "  version: {type: string, required: true}\n"
        "  sha: {type: string}\n"
        "  replicas: {type: integer}\n"
        "  canary: {type: boolean}\n"
        "  regions: {type: array}\n"
        "steps:\n"
        "  - {name: say, kind: shell, argv: [echo, '${version}']}\n"
    )
    out = lockgate(
        db_url,
        *("run", "release", "--pipelines", str(pipeline), "--wait", "-o", "json"),
        *("-p", "version=1.0", "-p", "sha=0123456789", "-p", "replicas=3"),
        *("-p", "canary=true", "-p", 'regions=["eu-west-1"]'),
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["params"] == {
        "version": "1.0",
        "sha": "0123456789",
        "replicas": 3,
        "canary": True,
        "regions": ["eu-west-1"],
    }
    bad = lockgate(
        db_url,
        "run",
        "release",
        "--pipelines",
        str(pipeline),
        "-p",
        "version=1",
        "-p",
        "replicas=three",
        "-p",
        "canary:={oops",
    )
    assert bad.returncode == 2
    assert "'canary:={oops': not JSON after ':='" in bad.stderr
    # Without a schema, values are text unless key:=<json> says otherwise.
    free = tmp_path / "free.yaml"
    free.write_text("name: free\nsteps:\n  - {name: say, kind: shell, argv: [echo, hi]}\n")
    plain = lockgate(
        db_url,
        "run",
        "free",
        "--pipelines",
        str(free),
        "--wait",
        "-o",
        "json",
        "-p",
        "n=5",
        "-p",
        "m:=5",
        "-p",
        "tag=1.10",
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["params"] == {"n": "5", "m": 5, "tag": "1.10"}


GATE = str(HERE / "pipelines" / "console" / "gate.yaml")


def test_a_run_at_an_approval_says_what_it_waits_for_and_the_truth_on_timeout(
    db_url: str,
) -> None:
    """``lockgate run`` printed nothing and blocked at an approval; ``--timeout`` claimed
    the in-process run would continue in the background. Now: the run id at once, what
    it waits for with the command that decides it, and what (nothing, here) continues it."""
    out = lockgate(
        db_url, "run", "gate", "--pipelines", GATE, "-p", "service=billing", "--timeout", "3"
    )
    assert out.returncode == 1
    first = out.stdout.splitlines()[0]
    assert first.startswith("started run ") and first.endswith(" of default/gate")
    run_id = first.split()[2]
    assert f"run {run_id} waits at approval 'sign-off': Release billing to production?" in (
        " ".join(out.stdout.split())
    )
    assert f"lockgate approve {run_id}" in out.stdout and "role approver" in out.stdout
    assert "nothing drives it once this command ends" in out.stderr
    assert f"lockgate runs cancel {run_id}" in out.stderr
    # JSON output keeps stdout for the document: the notes go to stderr.
    again = lockgate(
        db_url,
        *("run", "gate", "--pipelines", GATE, "-p", "service=billing", "--timeout", "3"),
        *("-o", "json"),
    )
    assert again.stdout == "" and "waits at approval" in again.stderr


WAIT = ("--wait", "-o", "json")


def test_a_python_step_after_an_approval_reads_earlier_outputs_typed(db_url: str) -> None:
    """A Python ``@step`` after an approval was refused ("expects input dict but step
    'ok' produces Any"); now it takes no input and reads ``ctx.outputs`` (typed as the
    producer declares). Run, approve from another shell, finish, as a user would."""
    flow = str(HERE / "pipelines" / "typed_flow.py")
    env = {**os.environ, "LOCKGATE_DATABASE_URL": db_url}
    running = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "run", "typed-flow", "--pipelines", flow, *WAIT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            listed = lockgate(db_url, "approvals", "list", "-o", "json")
            waiting = json.loads(listed.stdout) if listed.returncode == 0 else []
            if waiting:
                break
            assert time.monotonic() < deadline, listed.stderr
            time.sleep(0.1)
        run_id = waiting[0]["run_id"]
        approved = lockgate(db_url, "approve", run_id, "--as", "ops", "--role", "approver")
        assert approved.returncode == 0, approved.stderr
        out, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0, err
    run = json.loads(out)
    assert run["steps"][-1]["output"] == {
        "deployed": "registry.example/app:1.0",
        "approved_by": "ops",
    }


def test_bad_settings_are_one_line_each_with_exit_code_2(db_url: str, tmp_path: Path) -> None:
    """``LOCKGATE_CONCURRENCY=abc`` printed a 38-line traceback; now every bad value is
    named on one line, exit 2, and a settings file's typo is named with a suggestion."""
    out = lockgate(
        db_url, "runs", "list", env={"LOCKGATE_CONCURRENCY": "abc", "LOCKGATE_LEASE_SECONDS": "x"}
    )
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error (invalid_settings): ")
    assert "LOCKGATE_CONCURRENCY='abc'" in line and "LOCKGATE_LEASE_SECONDS='x'" in line
    config = tmp_path / "lockgate.toml"
    config.write_text("concurency = 3\n")
    typo = subprocess.run(
        [sys.executable, "-m", "lockgate", "runs", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "LOCKGATE_DATABASE_URL": db_url},
        timeout=60,
    )
    assert typo.returncode == 2
    assert "lockgate.toml: 'concurency' is not a setting (did you mean 'concurrency'?)" in (
        typo.stderr
    )
    missing = lockgate(db_url, "--config", str(tmp_path / "nope.toml"), "runs", "list")
    assert missing.returncode == 2 and "no such settings file" in missing.stderr


def test_settings_shows_each_value_and_where_it_came_from(db_url: str, tmp_path: Path) -> None:
    """A settings file, variables over it, options over both; secrets and the database
    password never shown."""
    config = tmp_path / "team.toml"
    config.write_text('concurrency = 12\nshell_env = ["KUBECONFIG", "AWS_*"]\nlease_seconds = 5\n')
    env = {
        "LOCKGATE_LEASE_SECONDS": "9",
        "LOCKGATE_SECRET_DEPLOY_TOKEN": "tok-not-shown-123",
        "LOCKGATE_CONFIG": str(config),
    }
    out = lockgate(
        "postgresql://ops:pw-not-shown@127.0.0.1:1/lockgate", "settings", "-o", "json", env=env
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["concurrency"] == {"value": 12, "from": str(config)}
    assert shown["shell_env"] == {"value": ["KUBECONFIG", "AWS_*"], "from": str(config)}
    assert shown["lease_seconds"] == {"value": 9.0, "from": "LOCKGATE_LEASE_SECONDS"}
    assert shown["poll_interval"]["from"] == "default"
    assert shown["secrets"]["value"] == {"DEPLOY_TOKEN": "***"}
    assert shown["database_url"]["value"] == "postgresql://ops:***@127.0.0.1:1/lockgate"
    assert "not-shown" not in out.stdout
    flag = lockgate(db_url, "--db", "sqlite:///other.db", "settings", "-o", "json")
    assert json.loads(flag.stdout)["database_url"]["from"] == "--db"
    version = lockgate(db_url, "--version")
    assert (
        version.returncode == 0
        and version.stdout.strip() == lockgate(db_url, "version").stdout.strip()
    )


def test_piped_output_ends_with_a_newline(db_url: str, ledger: dict[str, str]) -> None:
    """``run --wait | tee``: the live view's last frame ended without one."""
    out = lockgate(db_url, "run", "crashy", "--pipelines", PIPELINES, "--wait", env=ledger)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n") and "SUCCEEDED" in out.stdout


def test_init_makes_a_layout_that_validates_and_runs(tmp_path: Path) -> None:
    """``lockgate init DIR``: pipelines that validate and run as the printed next command
    says, a settings file that is used, a .gitignore; nothing is overwritten."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}

    def here(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lockgate", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=60,
        )

    made = here("init", "team")
    assert made.returncode == 0, made.stderr
    assert "cd team && lockgate run deploy --pipelines pipelines" in made.stdout
    project = tmp_path / "team"
    assert {p.name for p in project.iterdir()} == {"pipelines", "lockgate.toml", ".gitignore"}
    assert here("pipelines", "validate", "pipelines", cwd=project).returncode == 0
    for name in ("deploy", "announce"):
        ran = here(
            *("run", name, "--pipelines", "pipelines", "-p", "service=web"),
            *("-p", "version=1.0.0", "--wait", "-o", "json"),
            cwd=project,
        )
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["status"] == "SUCCEEDED"
    # The settings file made the database the project's own.
    assert (project / "lockgate.db").exists()
    shown = json.loads(here("settings", "-o", "json", cwd=project).stdout)
    assert shown["database_url"]["from"] == "lockgate.toml"
    again = here("init", "team")
    assert again.returncode == 4 and "nothing written" in again.stderr
