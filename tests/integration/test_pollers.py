"""Git pollers against a real repository on disk, with real ``git`` subprocesses."""

from __future__ import annotations

import base64
import http.server
import subprocess
import threading
from pathlib import Path

import pytest

from lockgate import App, NotFound, ParamsError, Pipeline, Settings, StepContext, step


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
        pipeline="build",
        repository=origin(repo),
        refs=["refs/heads/main", "refs/tags/v*"],
        interval_seconds=5,
        params={"commit": "${event.commit}"},
    )
    assert app.pollers.poll_once() == 0  # baseline
    assert app.pollers.rows.get(poller.id).seen == {
        "refs/heads/main": git(repo, "rev-parse", "HEAD")
    }
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "push", "-q", "origin", "HEAD:main", "HEAD:other")  # "other" is not tracked
    later = app.pollers.rows.get(poller.id).next_poll_at
    assert app.pollers.poll_once(later) == 1
    [run] = app.list_runs()
    assert run.params == {"commit": git(repo, "rev-parse", "HEAD")}
    assert app.pollers.poll_once(later + 5) == 0  # nothing new
    git(repo, "tag", "v1.0")
    git(repo, "push", "-q", "origin", "v1.0")
    assert app.pollers.poll_once(later + 10) == 1
    # Each new commit was stored as a delivery of the poller, with its run.
    firings = app.deliveries.list(poller.id)
    assert [(d.source, d.status, len(d.run_ids)) for d in firings] == [("poller", "DONE", 1)] * 2
    assert firings[1].key == f"refs/heads/main@{run.params['commit']}"
    assert firings[0].event["tag"] == "v1.0"
    app.pollers.rows.delete(poller.id)
    assert app.webhooks.rows.deliveries(poller.id) == []
    with pytest.raises(NotFound):
        app.deliveries.list(poller.id)


def test_a_broken_repository_is_recorded_not_raised(app: App, tmp_path: Path) -> None:
    """A repository that cannot be read leaves an error on the poller."""
    poller = app.pollers.create(
        pipeline="build", repository=str(tmp_path / "missing"), interval_seconds=5
    )
    assert app.pollers.poll_once() == 0
    assert "git ls-remote failed" in (app.pollers.rows.get(poller.id).last_error or "")


def test_bad_pollers_are_refused(app: App) -> None:
    """Option-like URLs, transport helpers and tiny intervals are refused, all listed."""
    with pytest.raises(ParamsError) as info:
        app.pollers.create(
            pipeline="build", repository="--upload-pack=touch /tmp/x", interval_seconds=1
        )
    assert info.value.problems == [
        "repository: a git URL or path (not starting with '-')",
        "interval_seconds: at least 5",
    ]
    with pytest.raises(ParamsError, match="transport helpers"):
        app.pollers.create(pipeline="build", repository="ext::sh -c touch% /tmp/pwned")


def test_a_params_template_that_cannot_render_fails_the_firing_like_a_webhooks(
    app: App, repo: Path
) -> None:
    """Pollers, schedules and webhooks share one firing path: a template that does not
    render stores the firing FAILED with the reason, and starts nothing."""
    app.register(Pipeline("build", [build]))
    poller = app.pollers.create(
        pipeline="build",
        repository=origin(repo),
        refs=["refs/heads/main"],
        params={"pr": "${event.nope}"},
    )
    assert app.pollers.poll_once() == 0  # baseline
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "push", "-q", "origin", "HEAD:main")
    assert app.pollers.poll_once(app.pollers.rows.get(poller.id).next_poll_at) == 0
    [firing] = app.deliveries.list(poller.id)
    assert (firing.status, firing.run_ids) == ("FAILED", [])
    assert firing.error is not None and firing.error.startswith("params: ${event.nope}")
    assert app.list_runs() == []


class _Advertiser(http.server.BaseHTTPRequestHandler):
    """A git smart-HTTP endpoint that only advertises refs, behind basic authentication."""

    expected = ""
    refs: dict[str, str] = {}

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Basic {self.expected}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return

        def pkt(line: bytes) -> bytes:
            return f"{len(line) + 4:04x}".encode() + line

        body = pkt(b"# service=git-upload-pack\n") + b"0000"
        for n, (ref, sha) in enumerate(sorted(self.refs.items())):
            caps = b"\0multi_ack side-band-64k ofs-delta" if n == 0 else b""
            body += pkt(f"{sha} {ref}".encode() + caps + b"\n")
        body += b"0000"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_credentials_are_a_named_secret_sent_to_an_http_repository(tmp_path: Path) -> None:
    """A poller names the secret with user:password; git sends it as basic auth to the
    repository (a real HTTP endpoint here); without it the poll records the failure. A
    password in the URL is refused."""
    sha = "a" * 40
    _Advertiser.expected = base64.b64encode(b"ci:s3cret-token-value").decode()
    _Advertiser.refs = {"refs/heads/main": sha}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Advertiser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/app.git"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        secrets={"GIT_CI": "ci:s3cret-token-value"},
    )
    app = App(settings)
    app.migrate()
    try:
        with_secret = app.pollers.create(pipeline="build", repository=url, credentials="GIT_CI")
        without = app.pollers.create(pipeline="build", repository=url)
        missing = app.pollers.create(pipeline="build", repository=url, credentials="NOT_SET")
        app.pollers.poll_once()
        assert app.pollers.get(with_secret.id).seen == {"refs/heads/main": sha}
        assert app.pollers.get(with_secret.id).last_error is None
        assert "git ls-remote failed" in (app.pollers.get(without.id).last_error or "")
        assert "no secret 'NOT_SET'" in (app.pollers.get(missing.id).last_error or "")
        assert "s3cret" not in str(app.pollers.get(with_secret.id).to_dict())
        # Threat: a credential in a URL viewers read. Userinfo and credential-like query
        # keys are refused alike.
        for leaky in (
            "https://ci:pw@git.example.com/app.git",
            "https://ghp_TOKEN@git.example.com/app.git",
        ):
            with pytest.raises(ParamsError, match="no user or password in an http"):
                app.pollers.create(pipeline="build", repository=leaky)
        with pytest.raises(ParamsError, match=r"no credentials in the query \(access_token\)"):
            app.pollers.create(
                pipeline="build", repository="https://git.example.com/app.git?access_token=abc"
            )
        with pytest.raises(ParamsError, match="credentials: the name of a configured secret"):
            app.pollers.update(without.id, credentials="not a name")
        assert app.pollers.update(with_secret.id, credentials="").credentials is None
    finally:
        server.shutdown()
        app.close()
