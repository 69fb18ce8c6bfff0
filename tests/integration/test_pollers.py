"""Git pollers against a real repository on disk, with real ``git`` subprocesses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lockgate import App, NotFound, ParamsError, Pipeline, StepContext, step


@step
def build(ctx: StepContext) -> None:
    pass


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A working clone whose pushes go to a bare repository (what the poller watches)."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "commit", "-q", "--allow-empty", "-m", "first")
    git(work, "push", "-q", "origin", "HEAD:main")
    return work


def origin(repo: Path) -> str:
    return str(repo.parent / "origin.git")


def test_first_poll_is_a_baseline_then_new_commits_fire(app: App, repo: Path) -> None:
    """Nothing fires for what exists; a new commit on a tracked ref starts one run."""
    app.register(Pipeline("build", [build]))
    poller = app.pollers.create(
        "build",
        origin(repo),
        refs=["refs/heads/main", "refs/tags/v*"],
        interval_seconds=5,
        params={"commit": "${event.commit}"},
    )
    assert app.pollers.poll_once() == 0  # baseline
    assert app.pollers.store.get(poller.id).seen == {
        "refs/heads/main": git(repo, "rev-parse", "HEAD")
    }
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "push", "-q", "origin", "HEAD:main", "HEAD:other")  # "other" is not tracked
    later = app.pollers.store.get(poller.id).next_poll_at
    assert app.pollers.poll_once(later) == 1
    [run] = app.list_runs()
    assert run.params == {"commit": git(repo, "rev-parse", "HEAD")}
    assert app.pollers.poll_once(later + 5) == 0  # nothing new
    git(repo, "tag", "v1.0")
    git(repo, "push", "-q", "origin", "v1.0")
    assert app.pollers.poll_once(later + 10) == 1
    # Each new commit was stored as a delivery of the poller, with its run.
    firings = app.deliveries(poller.id)
    assert [(d.source, d.status, len(d.run_ids)) for d in firings] == [("poller", "DONE", 1)] * 2
    assert firings[1].key == f"refs/heads/main@{run.params['commit']}"
    assert firings[0].event["tag"] == "v1.0"
    app.pollers.store.delete(poller.id)
    assert app.webhooks.triggers.deliveries(poller.id) == []
    with pytest.raises(NotFound):
        app.deliveries(poller.id)


def test_a_broken_repository_is_recorded_not_raised(app: App, tmp_path: Path) -> None:
    """A repository that cannot be read leaves an error on the poller."""
    poller = app.pollers.create("build", str(tmp_path / "missing"), interval_seconds=5)
    assert app.pollers.poll_once() == 0
    assert "git ls-remote failed" in (app.pollers.store.get(poller.id).last_error or "")


def test_bad_pollers_are_refused(app: App) -> None:
    """Option-like URLs, transport helpers and tiny intervals are refused, all listed."""
    with pytest.raises(ParamsError) as info:
        app.pollers.create("build", "--upload-pack=touch /tmp/x", interval_seconds=1)
    assert info.value.problems == [
        "repository: a git URL or path (not starting with '-')",
        "interval_seconds: at least 5",
    ]
    with pytest.raises(ParamsError, match="transport helpers"):
        app.pollers.create("build", "ext::sh -c touch% /tmp/pwned")


def test_a_params_template_that_cannot_render_fails_the_firing_like_a_webhooks(
    app: App, repo: Path
) -> None:
    """Pollers, schedules and webhooks share one firing path: a template that does not
    render stores the firing FAILED with the reason, and starts nothing."""
    app.register(Pipeline("build", [build]))
    poller = app.pollers.create(
        "build", origin(repo), refs=["refs/heads/main"], params={"pr": "${event.nope}"}
    )
    assert app.pollers.poll_once() == 0  # baseline
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "push", "-q", "origin", "HEAD:main")
    assert app.pollers.poll_once(app.pollers.store.get(poller.id).next_poll_at) == 0
    [firing] = app.deliveries(poller.id)
    assert (firing.status, firing.run_ids) == ("FAILED", [])
    assert firing.error is not None and firing.error.startswith("params: ${event.nope}")
    assert app.list_runs() == []
