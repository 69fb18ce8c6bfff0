"""The same CLI commands against a running ``lockgate server`` over REST."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import lockgate_server

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "crashy.py")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """``lockgate server`` on a free port; yields the environment a remote CLI needs."""
    with serving(db_url, tmp_path, PIPELINES) as env:
        yield env


@contextlib.contextmanager
def serving(db_url: str, tmp_path: Path, pipelines: str) -> Iterator[dict[str, str]]:
    """``lockgate server --pipelines PIPELINES`` and the environment a remote CLI needs."""
    base = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_LEDGER": str(tmp_path / "ledger"),
        "LOCKGATE_SLOW_SECONDS": "0.3",
        "LOCKGATE_POLL_INTERVAL": "0.05",
    }
    made = cli(base, "tokens", "create", "--name", "ci", "--role", "operator", "-o", "json")
    token = json.loads(made.stdout)["token"]
    with lockgate_server(base, "--pipelines", pipelines) as (url, _):
        # No database for the remote CLI: everything must go through the server.
        yield {
            "LOCKGATE_URL": url,
            "LOCKGATE_TOKEN": token,
            "LOCKGATE_DATABASE_URL": "sqlite:////nonexistent/never.db",
        }


def test_cli_commands_over_rest(server: dict[str, str]) -> None:
    """run --wait, runs list/show/logs -f work remotely with the same output."""
    done = cli(server, "run", "crashy", "--wait", "-o", "json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "SUCCEEDED" and run["requested_by"] == "ci"
    listed = json.loads(cli(server, "runs", "list", "-o", "json").stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    shown = json.loads(cli(server, "runs", "show", run["id"], "-o", "json").stdout)
    assert shown["events"][-1]["status"] == "SUCCEEDED"
    started = json.loads(cli(server, "run", "crashy", "-o", "json").stdout)
    follow = cli(server, "runs", "logs", started["id"], "-f", "-o", "json")
    assert follow.returncode == 0, follow.stderr  # the stream ends when the run ends
    after = json.loads(cli(server, "runs", "show", started["id"], "-o", "json").stdout)
    assert after["status"] == "SUCCEEDED"


def test_remote_errors_keep_their_codes(server: dict[str, str]) -> None:
    """Not found exits 3; a bad token exits 5; a cancel of a finished run exits 4."""
    missing = cli(server, "runs", "show", "nope")
    assert missing.returncode == 3 and "error (not_found)" in missing.stderr
    bad = cli({**server, "LOCKGATE_TOKEN": "lg_bad_token"}, "runs", "list")
    assert bad.returncode == 5 and "error (unauthorized)" in bad.stderr
    assert "the server refused LOCKGATE_TOKEN" in bad.stderr
    # A person at the command line is told the variable, not an HTTP header.
    none = cli({**server, "LOCKGATE_TOKEN": ""}, "runs", "list")
    assert none.returncode == 5 and "set LOCKGATE_TOKEN" in none.stderr
    assert "Authorization" not in none.stderr
    # Not found answers name no database path (a REST client must not learn it).
    unknown = cli(server, "run", "no-such-pipeline")
    assert unknown.returncode == 3
    assert "no pipeline default/no-such-pipeline is registered" in unknown.stderr
    assert "sqlite" not in unknown.stderr and "postgres" not in unknown.stderr
    run = json.loads(cli(server, "run", "crashy", "--wait", "-o", "json").stdout)
    cancel = cli(server, "runs", "cancel", run["id"])
    assert cancel.returncode == 4 and "only an active run can be cancelled" in cancel.stderr
    params = cli(server, "run", "crashy", "-p", "oops")
    assert params.returncode == 2 and "expected key=value" in params.stderr
    # --as and --role were silently ignored over REST: the token decides who acts.
    posing = cli(server, "approve", run["id"], "--as", "the-ceo", "--role", "admin")
    assert posing.returncode == 2 and "you act as the subject and role of" in posing.stderr


def test_channel_commands_in_process_and_over_rest(tmp_path: Path) -> None:
    """push --wait, stages, manifest, history and deployments print the same either way.
    (The faces are the same on either database: this runs on SQLite only.)"""
    db_url = f"sqlite:///{tmp_path / 'channels.db'}"
    channel = str(HERE / "pipelines" / "crashy_channel.py")
    local = {"LOCKGATE_DATABASE_URL": db_url, "LOCKGATE_LEDGER": str(tmp_path / "ledger")}
    pushed = cli(
        local,
        "channels",
        "push",
        "crashy",
        "--tenant",
        "acme",
        "--content",
        '{"n": 1}',
        "--pipelines",
        channel,
        "--wait",
        "-o",
        "json",
    )
    assert pushed.returncode == 0, pushed.stderr
    bad = cli(local, "channels", "push", "crashy", "--tenant", "acme", "--content", "{nope")
    assert bad.returncode == 2 and "not JSON" in bad.stderr
    undefined = cli(local, "channels", "push", "crashy", "--tenant", "a", "--content", "{}")
    assert undefined.returncode == 3 and "--pipelines" in undefined.stderr
    in_process = {
        cmd: cli(local, "channels", cmd, "crashy", *extra, "-o", "json").stdout
        for cmd, extra in (("stages", []), ("history", []), ("deployments", []))
    }
    manifest = cli(local, "channels", "manifest", "crashy", "three")
    assert json.loads(manifest.stdout) == {"pushes": ["acme:1"]}

    with serving(db_url, tmp_path, channel) as remote:
        for cmd, printed in in_process.items():
            over_rest = cli(remote, "channels", cmd, "crashy", "-o", "json")
            assert over_rest.returncode == 0, over_rest.stderr
            assert json.loads(over_rest.stdout) == json.loads(printed), cmd
        assert cli(remote, "channels", "manifest", "crashy", "three").stdout == manifest.stdout
        second = cli(
            remote,
            "channels",
            "push",
            "crashy",
            "--tenant",
            "globex",
            "--content",
            '{"n": 2}',
            "--wait",
        )
        assert second.returncode == 0, second.stderr
        latest = cli(remote, "channels", "manifest", "crashy", "--version", "2")
        assert json.loads(latest.stdout) == {"pushes": ["acme:1", "globex:2"]}
        unknown = cli(remote, "channels", "stages", "nope")
        assert unknown.returncode == 3 and "no channel 'nope'" in unknown.stderr


def trigger_commands(env: dict[str, str], repo: str) -> dict[str, object]:
    """Create, read, pause, resume and delete a trigger, a schedule and a poller."""

    def ok(*args: str) -> object:
        done = cli(env, *args, "-o", "json")
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else None

    seen: dict[str, object] = {}
    trigger = ok(
        "triggers", "create", "github", "crashy", "--branch", "main", "-p", "x=${event.commit}"
    )
    assert isinstance(trigger, dict) and len(str(trigger["secret"])) >= 32  # made and shown once
    schedule = ok(
        "schedules", "create", "crashy", "--cron", "0 3 * * *", "--timezone", "Europe/Paris"
    )
    poller = ok("pollers", "create", "crashy", repo, "--ref", "refs/heads/main", "--every", "30")
    assert ok("pollers", "deliveries", str(poller["id"])) == []  # type: ignore[index]
    queue = ok(
        "queues", "create", "crashy", "redis://127.0.0.1:6379/0", "deploys",
        "--match", "headers.env=prod", "--match", "headers.env=stage*",
        "-p", "attempt=${message.body.attempt}",
    )  # fmt: skip
    assert queue["match"] == {"headers.env": ["prod", "stage*"]}  # type: ignore[index]
    assert queue["dead_letter"] == "deploys.dead"  # type: ignore[index]
    assert ok("queues", "deliveries", str(queue["id"])) == []  # type: ignore[index]
    bad_queue = cli(env, "queues", "create", "crashy", "http://x:pw@h/", "s", "--match", "nope")
    assert bad_queue.returncode == 2 and "path=glob" in bad_queue.stderr
    changed = ok("triggers", "update", str(trigger["id"]), "--event", "push", "--branch", "main")
    assert changed["events"] == ["push"] and changed["branches"] == ["main"]  # type: ignore[index]
    rotated = ok("triggers", "rotate-secret", str(trigger["id"]), "--overlap", "0")
    assert len(str(rotated["new_secret"])) >= 32  # type: ignore[index]
    assert rotated["previous_secret"] is None  # type: ignore[index]
    made_here = (("triggers", trigger), ("schedules", schedule), ("pollers", poller))
    for group, made in (*made_here, ("queues", queue)):
        assert isinstance(made, dict)
        row_id = str(made["id"])
        assert [r["id"] for r in ok(group, "list")] == [row_id]  # type: ignore[union-attr]
        if group == "schedules":  # pause and resume are one code path for all three kinds
            assert ok(group, "pause", row_id)["enabled"] is False  # type: ignore[index]
            assert ok(group, "resume", row_id)["enabled"] is True  # type: ignore[index]
        gone = cli(env, group, "delete", row_id)
        assert gone.returncode == 0 and "deleted" in gone.stdout
        seen[group] = sorted(made)
    missing = cli(env, "schedules", "show", str(schedule["id"]))  # type: ignore[index]
    assert missing.returncode == 3 and "error (not_found)" in missing.stderr
    bad = cli(env, "schedules", "create", "crashy", "--cron", "nope", "--timezone", "Mars/Base")
    assert bad.returncode == 2
    assert "cron: 'nope' has 1 field; a cron expression has 5" in bad.stderr
    assert "is not an IANA time zone" in bad.stderr
    unset = cli(env, "triggers", "create", "github", "crashy", "--secret-env", "LG_NOT_SET")
    assert unset.returncode == 2 and "LG_NOT_SET is not set" in unset.stderr
    return seen


def test_trigger_commands_in_process_and_over_rest(tmp_path: Path) -> None:
    """triggers|schedules|pollers commands work on the database and through a server, with
    the same fields either way, and clear errors and exit codes. (The faces are the same
    on either database: this runs on SQLite only.)"""
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    local = {"LOCKGATE_DATABASE_URL": db_url}
    assert cli(local, "db", "upgrade").returncode == 0
    repo = str(tmp_path / "origin.git")
    here = trigger_commands(local, repo)
    made = cli(local, "tokens", "create", "--name", "root", "--role", "admin", "-o", "json")
    admin = json.loads(made.stdout)["token"]
    with serving(db_url, tmp_path, PIPELINES) as remote:
        there = trigger_commands({**remote, "LOCKGATE_TOKEN": admin}, repo)
        # Tokens go to the server too when a token is set: the CLI needs no database.
        listed = cli({**remote, "LOCKGATE_TOKEN": admin}, "tokens", "list", "-o", "json")
        assert listed.returncode == 0 and "root" in listed.stdout
    assert here == there
