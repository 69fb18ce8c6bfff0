"""The ``api`` step against a real HTTP server on 127.0.0.1, and its SSRF guard."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lockgate import App, Pipeline, RunStatus, Settings, StepContext, step
from lockgate.specs import SpecError, load_file


class Recorder:
    """What the test server saw, and how it should answer."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, Any, dict[str, str]]] = []
        self.delay = 0.0


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    """A real HTTP server on a free 127.0.0.1 port."""
    yield from serve()


@pytest.fixture
def other_server() -> Iterator[tuple[str, Recorder]]:
    """A second server: another origin (another port)."""
    yield from serve()


def serve() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(body) if body else None,
                }
            )
            time.sleep(rec.delay)
            status, payload, headers = rec.answers.pop(0) if rec.answers else (200, {}, {})
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def allowed(settings: Settings) -> Iterator[App]:
    """An App whose api steps may reach 127.0.0.1 (the test servers)."""
    app = App(settings.with_(api_allow=("127.0.0.1/32",), secrets={"TOKEN": "tok-123456"}))
    yield app
    app.close()


def one_call(name: str, url: str, extra: str = "") -> str:
    """A pipeline file with one api step."""
    return f"name: {name}\nsteps:\n  - name: c\n    kind: api\n    url: '{url}'\n{extra}"


async def run_yaml(app: App, tmp_path: Path, text: str, params: Any = None) -> Any:
    path = tmp_path / "api.yaml"
    path.write_text(text)
    pipeline = load_file(path, secret_names=app.settings.secrets.__contains__)
    app.register(pipeline)
    return await app.execute_async(pipeline.name, params, timeout=30)


async def test_post_with_json_body_captures_and_encoded_path(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """Placeholders are encoded for where they land; captures become the step's output."""
    base, rec = server
    rec.answers.append((201, {"ticket": {"id": 42, "tags": ["a", "b"]}}, {}))
    done = await run_yaml(
        allowed,
        tmp_path,
        f"""
name: ticket
params: {{team: {{type: string}}, count: {{type: integer}}}}
steps:
  - name: create
    kind: api
    method: POST
    url: "{base}/teams/${{team}}/tickets"
    headers: {{Authorization: "Bearer ${{secrets.TOKEN}}"}}
    query: {{dry: false}}
    body: {{count: "${{count}}", title: "for ${{team}}"}}
    expect_status: [201]
    capture: {{id: ticket.id, second_tag: ticket.tags.1}}
""",
        {"team": "a b/c", "count": 3},
    )
    assert done.status == RunStatus.SUCCEEDED
    output = allowed.get_run(done.id).steps[0].output
    assert output["status"] == 201 and output["id"] == 42 and output["second_tag"] == "b"
    [req] = rec.requests
    assert req["path"] == "/teams/a%20b%2Fc/tickets?dry=false"
    assert req["body"] == {"count": 3, "title": "for a b/c"}
    assert req["headers"]["Authorization"] == "Bearer tok-123456"
    assert req["headers"]["Idempotency-Key"] == f"{done.id}/create"
    assert req["headers"]["Host"] == base.removeprefix("http://")


async def test_unexpected_status_retries_then_fails(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """A status outside expect_status fails the attempt; the retry policy applies."""
    base, rec = server
    rec.answers += [(503, {"error": "busy"}, {}), (200, {"ok": True}, {})]
    text = f"""
name: flaky
steps:
  - name: call
    kind: api
    url: "{base}/health"
    retry: {{attempts: 2, backoff: 0.05}}
"""
    done = await run_yaml(allowed, tmp_path, text)
    assert done.status == RunStatus.SUCCEEDED
    assert len(rec.requests) == 2
    rec.answers += [(500, {"error": "down"}, {})] * 2
    failed = await allowed.execute_async("flaky", timeout=30)
    assert failed.status == RunStatus.FAILED
    assert "answered 500, expected 2xx" in (allowed.get_run(failed.id).steps[0].error or "")


async def test_timeouts_and_missing_captures_fail_clearly(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """A slow server times out; a capture path that is absent is named."""
    base, rec = server
    rec.delay = 1.0
    done = await run_yaml(
        allowed,
        tmp_path,
        one_call("slow", f"{base}/", "    timeout: 0.2\n"),
    )
    assert done.status == RunStatus.FAILED
    assert "timed out after 0.2s" in (allowed.get_run(done.id).steps[0].error or "")
    rec.delay = 0
    rec.answers.append((200, {"a": 1}, {}))
    done = await run_yaml(allowed, tmp_path, one_call("cap", f"{base}/", "    capture: {x: a.b}\n"))
    assert "response has no x (a.b)" in (allowed.get_run(done.id).steps[0].error or "")


async def test_rollback_calls_the_api(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """A later failure runs the api step's rollback, which can use the captured id."""
    base, rec = server
    rec.answers += [(201, {"id": "vm-7"}, {}), (500, {}, {}), (204, b"", {})]
    done = await run_yaml(
        allowed,
        tmp_path,
        f"""
name: provision
steps:
  - name: create
    kind: api
    method: POST
    url: "{base}/vms"
    capture: {{id: id}}
    rollback:
      kind: api
      method: DELETE
      url: "{base}/vms/${{steps.create.id}}"
  - name: configure
    kind: api
    url: "{base}/configure"
""",
    )
    assert done.status == RunStatus.ROLLED_BACK
    assert [(r["method"], r["path"]) for r in rec.requests] == [
        ("POST", "/vms"),
        ("GET", "/configure"),
        ("DELETE", "/vms/vm-7"),
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/", "a loopback address"),
        ("http://2130706433:{port}/", "a loopback address"),
        ("http://0x7f.1:{port}/", "a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "a loopback address"),
        ("http://localhost:{port}/", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://10.0.0.1/", "a private address"),
        ("http://[fd00::1]/", "address"),
        ("ftp://127.0.0.1/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
async def test_ssrf_targets_are_refused(
    app: App, tmp_path: Path, server: tuple[str, Recorder], url: str, reason: str
) -> None:
    """Without an allowance, private, loopback and link-local targets are never called."""
    base, rec = server
    port = base.rsplit(":", 1)[1]
    done = await run_yaml(
        app,
        tmp_path,
        f"name: ssrf\nsteps:\n  - name: c\n    kind: api\n    url: '{url.format(port=port)}'\n",
    )
    assert done.status == RunStatus.FAILED
    assert reason in (app.get_run(done.id).steps[0].error or "")
    assert rec.requests == []


async def test_a_redirect_to_the_metadata_address_is_refused(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """Redirects are re-checked at every hop; without follow_redirects a 302 is a failure."""
    base, rec = server
    hop = (302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
    rec.answers += [hop, hop]
    text = f"""
name: redirect
steps:
  - name: follow
    kind: api
    url: "{base}/start"
    follow_redirects: true
"""
    done = await run_yaml(allowed, tmp_path, text)
    assert done.status == RunStatus.FAILED
    assert "169.254.169.254, a link-local address" in (
        allowed.get_run(done.id).steps[0].error or ""
    )
    plain = text.replace("name: redirect", "name: redirect2").replace("follow_redirects: true", "")
    done = await run_yaml(allowed, tmp_path, plain)
    assert "answered 302" in (allowed.get_run(done.id).steps[0].error or "")


async def test_oversized_responses_and_header_injection_are_refused(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """A response over the cap fails; a header value with a line break is refused."""
    base, rec = server
    rec.answers.append((200, b"x" * 5000, {}))
    text = one_call("big", f"{base}/", "    max_response_bytes: 1000\n")
    done = await run_yaml(allowed, tmp_path, text)
    assert "response larger than 1000 bytes" in (allowed.get_run(done.id).steps[0].error or "")
    text = f"""
name: inject
params: {{v: {{type: string}}}}
steps:
  - name: c
    kind: api
    url: "{base}/"
    headers: {{X-Note: "${{v}}"}}
"""
    done = await run_yaml(allowed, tmp_path, text, {"v": "ok\r\nX-Evil: 1"})
    assert done.status == RunStatus.FAILED
    assert "contains a line break" in (allowed.get_run(done.id).steps[0].error or "")
    assert len(rec.requests) == 1


async def test_service_request_example_end_to_end(
    allowed: App, server: tuple[str, Recorder]
) -> None:
    """The bundled service-request example: approval, provisioning, registration."""
    from lockgate.specs.discover import load_pipelines

    base, rec = server
    allowed.register(*load_pipelines(["lockgate.examples"]))
    rec.answers += [
        (201, {"id": "db-9", "connection": {"dsn": "postgres://db-9"}}, {}),
        (200, {}, {}),
    ]
    run = allowed.acting("dev").start_run("service-request", {"team": "payments", "api": base})
    w = allowed.worker()
    await w.start()
    try:
        deadline = time.monotonic() + 10
        while allowed.get_run(run.id).run.status != RunStatus.WAITING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        allowed.acting("lead", ["approver"]).decide(run.id, "approve", input={"ticket": "CHG-7"})
        done = await allowed.wait(run.id, timeout=10)
    finally:
        await w.stop()
    assert done.status == RunStatus.SUCCEEDED
    assert [(r["method"], r["path"], r["body"]) for r in rec.requests] == [
        ("POST", "/databases", {"team": "payments", "size": "small", "ticket": "CHG-7"}),
        ("PUT", "/teams/payments/resources/db-9", {"kind": "database", "ticket": "CHG-7"}),
    ]


async def test_lifecycle_hooks_in_a_file_notify_an_api(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """A ``run_finished`` hook posts the outcome; a ``step_failed`` hook sees the error."""
    base, rec = server
    text = f"""
name: hooked
params: {{fail: {{type: boolean, default: false}}}}
steps:
  - name: work
    kind: shell
    argv: [python3, -c, "import sys; sys.exit(1 if sys.argv[1] == 'true' else 0)", "${{fail}}"]
hooks:
  step_failed:
    - kind: api
      method: POST
      url: "{base}/failed"
      body: {{step: "${{hook.step}}", error: "${{hook.error}}"}}
  run_finished:
    - kind: api
      method: POST
      url: "{base}/finished"
      body: {{run: "${{run.id}}", status: "${{hook.status}}"}}
"""
    done = await run_yaml(allowed, tmp_path, text)
    assert done.status == RunStatus.SUCCEEDED
    assert [(r["path"], r["body"]) for r in rec.requests] == [
        ("/finished", {"run": done.id, "status": "SUCCEEDED"})
    ]
    rec.requests.clear()
    failed = await allowed.execute_async("hooked", {"fail": True}, timeout=30)
    assert failed.status == RunStatus.FAILED
    paths = [(r["path"], r["body"]) for r in rec.requests]
    assert paths[0][0] == "/failed" and paths[0][1]["step"] == "work"
    assert "exited with status 1" in paths[0][1]["error"]
    assert paths[1] == ("/finished", {"run": failed.id, "status": "FAILED"})


async def test_a_failed_release_skips_the_rollback_that_needs_its_output(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """The README's example when the release call fails: the failed step's own rollback
    needs the release id it never got, so it is skipped (nothing to undo), the run ends
    FAILED rather than ROLLBACK_FAILED, and its error leads with the cause."""
    base, rec = server
    rec.answers.append((503, {"error": "unavailable"}, {}))
    done = await run_yaml(
        allowed,
        tmp_path,
        f"""
name: release
steps:
  - name: release
    kind: api
    method: POST
    url: "{base}/releases"
    capture: {{release_id: id}}
    rollback:
      kind: api
      method: DELETE
      url: "{base}/releases/${{steps.release.release_id}}"
""",
    )
    assert done.status == "FAILED"
    assert (done.error or "").startswith("step 'release' failed:") and "503" in done.error
    assert [r["method"] for r in rec.requests] == ["POST"]  # no DELETE was sent
    events = [(e.step, e.status) for e in allowed.events(done.id)]
    assert ("release", "ROLLBACK_SKIPPED") in events
    [cause] = allowed.errors(done.id)
    assert cause.step == "release" and "503" in cause.message


async def test_rollbacks_see_the_cause_and_their_errors_follow_it(app: App) -> None:
    """Rollbacks get the causing error as ``ctx.error``; a rollback that fails is recorded
    after the cause, and the run's error still leads with the cause."""
    seen: list[str] = []

    @step
    def reserve(ctx: StepContext) -> None:
        ctx.save({"slot": 7})

    @reserve.rollback
    def release_slot(ctx: StepContext) -> None:
        seen.append(f"reserve saw {ctx.error!r}")
        raise RuntimeError("slot service down")

    @step
    def deploy(ctx: StepContext) -> None:
        raise RuntimeError("image not found")

    app.register(Pipeline("failing", [reserve, deploy]))
    done = await app.execute_async("failing", timeout=30)
    assert done.status == "ROLLBACK_FAILED"
    assert seen == ["reserve saw RuntimeError('image not found')"]
    assert (done.error or "").startswith("step 'deploy' failed: RuntimeError: image not found")
    errors = [(e.step, e.message) for e in app.errors(done.id)]
    assert errors == [
        ("deploy", "RuntimeError: image not found"),
        ("reserve", "RuntimeError: slot service down"),
    ]


async def test_a_url_param_can_be_the_whole_url_and_query_joins_its_own(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """``url: "${target}"`` works for a param declared ``format: url``, and ``query:``
    is added to the URL's own query instead of replacing it."""
    base, rec = server
    text = """
name: whole
params:
  target: {type: string, format: url, required: true}
steps:
  - name: c
    kind: api
    url: "${target}"
    query: {page: 2}
"""
    done = await run_yaml(allowed, tmp_path, text, {"target": f"{base}/items?sort=name"})
    assert done.status == RunStatus.SUCCEEDED
    assert rec.requests[0]["path"] == "/items?sort=name&page=2"


def test_a_param_that_opens_a_url_must_be_declared_as_one(tmp_path: Path) -> None:
    """Otherwise any string would become the base URL: refused at load, at file:line."""
    path = tmp_path / "loose.yaml"
    path.write_text(
        "name: loose\nparams:\n  target: {type: string}\nsteps:\n"
        "  - name: c\n    kind: api\n    url: '${target}/x'\n"
    )
    with pytest.raises(SpecError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert str(problem).startswith(f"{path}:7:") and "format: url" in str(problem)


async def test_a_secret_in_the_url_is_masked_however_it_was_encoded(
    settings: Settings, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """Threat: a secret in a query string leaking through the logged URL once httpx has
    normalised its encoding."""
    base, _ = server
    secret = "k3y w1th/odd+chars&=é"
    app = App(settings.with_(api_allow=("127.0.0.1/32",), secrets={"KEY": secret}))
    try:
        text = f"""
name: keyed
steps:
  - name: c
    kind: api
    url: "{base}/items?key=${{secrets.KEY}}"
    query: {{other: "${{secrets.KEY}}"}}
"""
        done = await run_yaml(app, tmp_path, text)
        assert done.status == RunStatus.SUCCEEDED
        logged = "\n".join(line.message for line in app.logs(done.id))
        assert "k3y" not in logged and "w1th" not in logged and "***" in logged
    finally:
        app.close()


async def test_credentials_stay_behind_on_a_redirect_to_another_origin(
    settings: Settings,
    tmp_path: Path,
    server: tuple[str, Recorder],
    other_server: tuple[str, Recorder],
) -> None:
    """Threat: a redirect handing the step's credentials to another host. Same origin:
    they go along; another origin: Authorization and secret-bearing headers are dropped."""
    base, rec = server
    other, other_rec = other_server
    rec.answers += [
        (302, {}, {"Location": f"{base}/same"}),
        (302, {}, {"Location": f"{other}/elsewhere"}),
    ]
    app = App(settings.with_(api_allow=("127.0.0.1/32",), secrets={"KEY": "k-123456789"}))
    try:
        text = f"""
name: hops
steps:
  - name: c
    kind: api
    url: "{base}/start"
    follow_redirects: true
    headers:
      Authorization: "Bearer ${{secrets.KEY}}"
      X-Api-Key: "${{secrets.KEY}}"
      X-Trace: plain
"""
        done = await run_yaml(app, tmp_path, text)
        assert done.status == RunStatus.SUCCEEDED
    finally:
        app.close()
    same = rec.requests[1]["headers"]
    assert same["Authorization"] == "Bearer k-123456789" and same["X-Api-Key"] == "k-123456789"
    [elsewhere] = other_rec.requests
    assert "Authorization" not in elsewhere["headers"]
    assert "X-Api-Key" not in elsewhere["headers"]
    assert elsewhere["headers"]["X-Trace"] == "plain"


async def test_a_path_placeholder_cannot_climb_the_url(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """Threat: ``..`` in a path placeholder turning /services/../releases into /releases."""
    base, rec = server
    text = f"""
name: climb
params: {{name: {{type: string}}}}
steps:
  - name: c
    kind: api
    url: "{base}/services/${{name}}/releases"
"""
    done = await run_yaml(allowed, tmp_path, text, {"name": ".."})
    assert done.status == RunStatus.SUCCEEDED
    assert rec.requests[0]["path"] == "/services/%2E%2E/releases"


async def test_logged_bodies_mask_credentials_and_can_be_turned_off(
    allowed: App, tmp_path: Path, server: tuple[str, Recorder]
) -> None:
    """Threat: viewers reading a token the called API returned (no configured secret, so
    the masker does not know it) in the step log. Values under credential-like keys are
    masked in logged JSON and form bodies; ``log_bodies: false`` logs no body at all."""
    base, rec = server
    issued = {"access_token": "at-98765-live", "expires_in": 3600, "user": {"apiKey": "k-1"}}
    rec.answers += [(200, issued, {}), (200, issued, {})]
    body = "{client_secret: cs-13579-live, scope: deploy}"
    done = await run_yaml(
        allowed,
        tmp_path,
        one_call("login", f"{base}/token", f"    method: POST\n    body: {body}\n"),
    )
    assert done.status == RunStatus.SUCCEEDED
    text = "\n".join(line.message for line in allowed.logs(done.id))
    assert "response body:" in text and "request body:" in text
    assert '"expires_in":3600' in text and '"scope":"deploy"' in text
    for credential in ("at-98765-live", "cs-13579-live", "k-1"):
        assert credential not in text
    quiet = await run_yaml(
        allowed,
        tmp_path,
        one_call(
            "quiet", f"{base}/token", f"    method: POST\n    body: {body}\n    log_bodies: false\n"
        ),
    )
    messages = [line.message for line in allowed.logs(quiet.id)]
    assert not any("body" in m for m in messages)
    assert any(m.startswith("answered 200") for m in messages)
