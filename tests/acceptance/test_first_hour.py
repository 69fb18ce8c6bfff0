"""The first hour, as a newcomer meets it: README's commands on a fresh directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lockgate.testing import free_port

BIN = str(Path(sys.executable).parent)


def clean_env(**extra: str) -> dict[str, str]:
    """A shell's environment with nothing of lockgate's set."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return {**keep, "PATH": f"{BIN}:{keep.get('PATH', '/usr/bin:/bin')}", **extra}


def lockgate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_banner_commands_work_pasted_into_another_shell(tmp_path: Path) -> None:
    """``lockgate server --examples`` prints how to get a token, how to point the CLI at
    it and a run to start; pasted as printed into a shell elsewhere, they work."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    port = free_port()
    out = tmp_path / "server.out"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "lockgate", "server", "--examples", "--port", str(port)],
            cwd=here,
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "press Ctrl-C" not in out.read_text():
            assert server.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        banner = out.read_text()
        assert f"database sqlite:///{here / 'lockgate.db'}" in banner
        commands = banner.split("In another shell:\n")[1].split("press Ctrl-C")[0]
        script = "set -euo pipefail\n" + commands
        shell = subprocess.run(
            ["bash", "-c", script],
            cwd=elsewhere,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0, (commands, shell.stdout, shell.stderr)
        assert "SUCCEEDED" in shell.stdout
        assert "worker started" not in shell.stderr  # progress, not a worker's log lines
        assert not (elsewhere / "lockgate.db").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0


def test_a_command_elsewhere_names_the_database_and_creates_none(tmp_path: Path) -> None:
    """In a directory with no database, a command says which database it looked for
    (an absolute path) and how to get one, instead of creating an empty one; an empty,
    unmigrated database gets a one-line error naming the command that fixes it."""
    out = lockgate(tmp_path, "runs", "list")
    assert out.returncode == 1
    assert out.stderr.startswith("error (no_database): no lockgate database at ")
    assert str(tmp_path / "lockgate.db") in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "lockgate.db").exists()
    out = lockgate(tmp_path, "run", "release", "-p", "service=x")
    assert out.returncode == 1 and "no_database" in out.stderr
    assert not (tmp_path / "lockgate.db").exists()

    (tmp_path / "empty.db").write_bytes(b"")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    out = lockgate(tmp_path, "--db", url, "runs", "list")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"error (schema_missing): database {url} has no lockgate schema or an older one: "
        "run `lockgate db upgrade`"
    ]
    assert lockgate(tmp_path, "--db", url, "db", "upgrade").returncode == 0
    out = lockgate(tmp_path, "--db", url, "run", "release", "-p", "service=x")
    assert out.returncode == 3
    assert "no pipeline default/release is registered" in out.stderr
    assert f"(database {url})" in out.stderr


def test_help_names_the_database_and_the_exit_codes(tmp_path: Path) -> None:
    """``lockgate --help`` shows the absolute database path in use here and every exit code."""
    out = lockgate(tmp_path, "--help", COLUMNS="200")
    assert f"sqlite:///{tmp_path / 'lockgate.db'}" in out.stdout
    for code in ("0 ok", "2 invalid params", "3 not found", "4 state conflict", "5 unauthorised"):
        assert code in out.stdout


def test_tables_are_whole_when_piped_and_logs_are_json_lines(tmp_path: Path) -> None:
    """Piped output keeps every character; ``runs logs -o json`` is one object per line."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    examples = ["run", "release", "--examples", "-p", "service=a-rather-long-service-name"]
    done = lockgate(tmp_path, "--db", url, *examples, "-p", "version=1.2.3", "-o", "json")
    assert done.returncode == 0, done.stderr
    listed = lockgate(tmp_path, "--db", url, "runs", "list")
    assert "default/release" in listed.stdout and "…" not in listed.stdout
    import json

    run_id = json.loads(done.stdout)["id"]
    logs = lockgate(tmp_path, "--db", url, "runs", "logs", run_id, "-o", "json")
    lines = logs.stdout.splitlines()
    assert len(lines) > 3 and all(json.loads(line)["run_id"] == run_id for line in lines)
