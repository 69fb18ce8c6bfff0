"""The web console in real headless Chromium against a real ``lockgate server``.

Each page these tests visit is saved as a screenshot in ``docs/console/`` (docs/console.md
shows them). Run them alone with ``pytest -m console``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    expect,
    sync_playwright,
)
from servers import lockgate_server

from lockgate import App, Settings
from lockgate.testing import eventually

pytestmark = pytest.mark.console

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "console")
SHOTS = HERE.parents[1] / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
#: Headless, and nothing that would reach out of this machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "console-webhook-secret-1234"


@dataclass
class Console:
    base: str
    tokens: dict[str, str]
    db_url: str

    def rest(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """``lockgate server`` with the console test pipelines and the examples, and a token
    per person: admin, an approver (ann), an operator (olga) and a viewer (vic)."""
    folder = tmp_path_factory.mktemp("console")
    db_url = f"sqlite:///{folder / 'lockgate.db'}"
    app = App(Settings(database_url=db_url))
    app.migrate()
    tokens = {
        who: app.tokens.create(who, role)[1]
        for who, role in (
            ("root", "admin"),
            ("ann", "approver"),
            ("olga", "operator"),
            ("vic", "viewer"),
        )
    }
    app.close()
    env = {
        "LOCKGATE_DATABASE_URL": db_url,
        "LOCKGATE_POLL_INTERVAL": "0.05",
        # Every test signs in from 127.0.0.1: more than a person's budget of attempts.
        "LOCKGATE_CONSOLE_SIGNIN_PER_MINUTE": "600",
    }
    with lockgate_server(env, "--pipelines", PIPELINES, "--examples") as (url, _):
        yield Console(url, tokens, db_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    yield made
    made.close()


def sign_in(context: BrowserContext, console: Console, who: str) -> Page:
    page = context.new_page()
    page.goto(f"{console.base}/runs")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/runs$"))
    page.fill("#token", console.tokens[who])
    page.click("text=Sign in >> nth=-1")
    expect(page).to_have_url(f"{console.base}/runs")
    return page


def waiting_for_decision(console: Console, run_id: str) -> None:
    """Wait until run ``run_id`` is parked at its approval step."""
    with console.rest("vic") as rest:

        def parked() -> bool:
            found = rest.get("/api/v1/approvals").json()["approvals"]
            return any(a["run_id"] == run_id for a in found)

        eventually(parked, f"run {run_id} to wait for a decision", timeout=10, every=0.05)


def tab_to(page: Page, target: Locator, most: int = 40) -> None:
    """Press Tab until ``target`` has the focus (it must be reachable by keyboard)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{target} cannot be reached with Tab")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def start_run(console: Console, pipeline: str, params: dict[str, object], who: str) -> str:
    with console.rest(who) as rest:
        answer = rest.post("/api/v1/runs", json={"pipeline": pipeline, "params": params})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


def test_sign_in_sign_out_and_one_time_links(context: BrowserContext, console: Console) -> None:
    """A token signs in; a wrong one is refused; signing out ends the session on the
    server (the old cookie no longer works); a one-time link works once."""
    page = context.new_page()
    page.goto(f"{console.base}/sign-in")
    page.fill("#token", "lg_nope_not_a_token")
    page.click("main button[type=submit]")
    expect(page.locator(".problem")).to_contain_text("not valid")
    shot(page, "sign-in")
    page = sign_in(context, console, "vic")
    expect(page.locator(".who")).to_contain_text("vic")
    cookie = next(c for c in context.cookies() if c["name"] == "lockgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile("/sign-in"))
    context.add_cookies([cookie])  # the old cookie, put back: the server ended it
    page.goto(f"{console.base}/runs")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))

    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "lockgate",
            "console-link",
            "--role",
            "approver",
            "--subject",
            "ann",
            "--base-url",
            console.base,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LOCKGATE_DATABASE_URL": console.db_url},
        check=True,
    )
    link = made.stdout.strip()
    assert link.startswith(f"{console.base}/sign-in/link/lgl_")
    page.goto(link)
    tab_to(page, page.locator("main button", has_text="Sign in"))  # keyboard only
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{console.base}/runs")
    expect(page.locator(".who")).to_contain_text("ann")
    other = context.browser.new_context()  # type: ignore[union-attr]
    again = other.new_page()
    again.goto(link)
    again.click("main button[type=submit]")
    expect(again.locator(".problem")).to_contain_text("used, has expired")
    other.close()


def test_start_a_run_from_the_form_and_watch_its_logs_arrive(
    context: BrowserContext, console: Console
) -> None:
    """The start form is made from the params schema; the run page shows lines as the step
    writes them (server-sent events), colours as classes, and the final status."""
    page = sign_in(context, console, "olga")
    page.click("nav >> text=Pipelines")
    page.click("text=default/chatty")
    page.fill("#param\\.lines", "6")
    page.fill("#param\\.pause", "0.5")
    shot(page, "pipeline")
    page.click("form.start button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
    expect(page.locator("p.note")).to_have_text("run started")
    lines = page.locator('pre[data-log="talk"] .line')
    expect(lines.first).to_contain_text("line 1 of 6", timeout=10_000)
    # Lines arrive while the step still runs: fewer than six are there at first.
    assert lines.count() < 6
    expect(page.locator('pre[data-log="talk"] .ansi-fg-32').first).to_be_visible()
    expect(page.locator("[data-run-status]")).to_contain_text("SUCCEEDED", timeout=15_000)
    expect(lines).to_have_count(6)
    page.fill("[data-log-search]", "line 3")
    expect(page.locator('pre[data-log="talk"] .line:not(.hidden-by-search)')).to_have_count(1)
    shot(page, "run")
    page.click("nav >> text=Runs")
    expect(page.locator("table.runs")).to_contain_text("default/chatty")
    shot(page, "runs")


def test_an_approver_approves_from_the_inbox_and_a_viewer_cannot(
    browser: Browser, console: Console
) -> None:
    """The inbox lists what ann may decide, with its message and input form; she approves
    with the keyboard only. vic, a viewer, sees no button, and his forged POST is 403."""
    run_id = start_run(console, "gate", {"service": "billing"}, "olga")
    waiting_for_decision(console, run_id)
    viewer = browser.new_context()
    vic = sign_in(viewer, console, "vic")
    vic.goto(f"{console.base}/approvals")
    expect(vic.locator("body")).to_contain_text("Waiting for others")
    expect(vic.locator("button", has_text="Approve")).to_have_count(0)
    csrf = vic.locator("input[name=csrf]").first.get_attribute("value")
    forged = vic.request.post(
        f"{console.base}/runs/{run_id}/decisions",
        form={"csrf": csrf or "", "decision": "approve", "input.ticket": "CHG-1"},
        max_redirects=0,
    )
    assert forged.status == 403
    viewer.close()

    approver = browser.new_context()
    ann = sign_in(approver, console, "ann")
    ann.click("nav >> text=Approvals")
    card = ann.locator("article.card", has_text="Release billing to production?")
    expect(card).to_be_visible()
    shot(ann, "approvals")
    # Keyboard only: Tab into the ticket field, type, Tab to the comment, then to Approve.
    tab_to(ann, card.locator("input[name='input.ticket']"))
    ann.keyboard.type("CHG-4711")
    ann.keyboard.press("Tab")
    ann.keyboard.type("capacity checked")
    ann.keyboard.press("Tab")
    expect(card.locator("button", has_text="Approve")).to_be_focused()
    ann.keyboard.press("Enter")
    expect(ann.locator(".note")).to_contain_text("approved")
    ann.goto(f"{console.base}/runs/{run_id}")
    expect(ann.locator("[data-run-status]")).to_contain_text("SUCCEEDED", timeout=15_000)
    expect(ann.locator('pre[data-log="announce"]')).to_contain_text("approved with CHG-4711")
    approver.close()


def test_a_reject_needs_no_input_and_ends_the_run(
    context: BrowserContext, console: Console
) -> None:
    """Reject from the run page, with a comment and no ticket: the step fails and the run
    does not go on."""
    run_id = start_run(console, "gate", {"service": "search"}, "olga")
    waiting_for_decision(console, run_id)
    page = sign_in(context, console, "ann")
    page.goto(f"{console.base}/runs/{run_id}")
    form = page.locator("form.decide")
    expect(form).to_be_visible(timeout=10_000)
    form.locator("input[name=comment]").fill("not during the freeze")
    form.locator("button", has_text="Reject").click()
    expect(page.locator(".note")).to_contain_text("rejected")
    expect(page.locator("[data-run-status]")).to_contain_text(
        re.compile("FAILED|ROLLED_BACK"), timeout=15_000
    )


def test_a_failed_run_shows_its_cause_and_rollback(
    context: BrowserContext, console: Console
) -> None:
    """A run whose second step fails is rolled back: the page shows the cause first, the
    rollback of the first step, and the traceback on request."""
    run_id = start_run(console, "breaks", {}, "olga")
    page = sign_in(context, console, "vic")
    page.goto(f"{console.base}/runs/{run_id}")
    expect(page.locator("[data-run-status]")).to_contain_text("ROLLED_BACK", timeout=15_000)
    expect(page.locator(".facts")).to_contain_text("column already exists")
    expect(page.locator('[data-step="prepare"]')).to_contain_text("ROLLED_BACK")
    page.click(".error-entry summary")
    expect(page.locator(".error-entry pre").first).to_contain_text("RuntimeError")
    shot(page, "run-rolled-back")


def test_a_failed_step_that_asks_is_retried_from_its_page(
    context: BrowserContext, console: Console
) -> None:
    """A step with on_failure: ask fails and waits; the run page offers retry, skip and
    roll back to an operator; a retry lets the run succeed."""
    run_id = start_run(console, "wobbly", {}, "olga")
    page = sign_in(context, console, "olga")
    page.goto(f"{console.base}/runs/{run_id}")
    for _ in range(100):
        if page.locator("#approval-h").count():
            break
        page.wait_for_timeout(100)
        page.reload()
    expect(page.locator("#approval-h")).to_have_text("Failed, waiting for a decision")
    expect(page.locator(".approval")).to_contain_text("the registry timed out")
    expect(page.locator("button", has_text="Skip it")).to_be_visible()
    shot(page, "run-asks")
    page.click("button:has-text('Retry the step')")
    expect(page.locator(".note")).to_contain_text("decided: retry")
    expect(page.locator("[data-run-status]")).to_contain_text("SUCCEEDED", timeout=15_000)


def test_a_webhook_delivery_is_shown_and_redelivered(
    context: BrowserContext, console: Console
) -> None:
    """A signed delivery shows on its trigger's page with its run; an admin redelivers it
    and a new run starts."""
    with console.rest("root") as rest:
        made = rest.post(
            "/api/v1/triggers",
            json={
                "provider": "generic",
                "pipeline": "chatty",
                "secret": SECRET,
                "params": {"lines": "${payload.lines}", "pause": 0},
            },
        )
        assert made.status_code == 201, made.text
    trigger = made.json()["id"]
    body = json.dumps({"lines": 2}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = httpx.post(
        f"{console.base}/hooks/{trigger}", content=body, headers={"X-Signature": signature}
    )
    assert sent.status_code == 202, sent.text
    page = sign_in(context, console, "root")
    page.click("nav >> text=Triggers")
    page.click(f"a[href='/triggers/webhooks/{trigger}']")
    expect(page.locator("dl.facts")).to_contain_text(f"/hooks/{trigger}")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("DONE")
    first = page.locator("table tbody tr td a[href^='/runs/']").get_attribute("href")
    page.click("text=Redeliver")
    expect(page.locator(".note")).to_contain_text("processed again: DONE")
    again = page.locator("table tbody tr td a[href^='/runs/']")
    expect(again).to_have_count(1)
    assert again.get_attribute("href") != first  # a new run
    shot(page, "trigger")


def test_a_channel_push_reaches_prod_and_shows_on_the_channel_page(
    browser: Browser, console: Console
) -> None:
    """Two pushes to the example flags channel go through beta and gamma, wait for an
    approval before prod, which ann gives in the inbox; the channel page then shows what
    each stage serves, the deployments, the manifests and a diff between versions."""
    with console.rest("olga") as rest:
        for values in (["dark-mode"], ["dark-mode", "new-checkout"]):
            content = {"values": values}
            pushed = rest.post(
                "/api/v1/channels/flags/push", json={"tenant": "acme", "content": content}
            )
            assert pushed.status_code == 202, pushed.text
    approver = browser.new_context()
    ann = sign_in(approver, console, "ann")
    for _ in range(2):  # deployments of a channel run one at a time: approve each in turn
        ann.goto(f"{console.base}/approvals")
        card = ann.locator("article.card", has_text="flags")
        for _ in range(100):
            if card.count():
                break
            ann.wait_for_timeout(100)
            ann.reload()
        card.first.locator("button", has_text="Approve").click()
        expect(ann.locator(".note")).to_contain_text("approved")
    approver.close()

    viewer = browser.new_context()
    page = sign_in(viewer, console, "vic")
    page.goto(f"{console.base}/channels/flags")
    for _ in range(150):
        if page.locator("h2:has-text('Deployments') + table").inner_text().count("SUCCEEDED") == 2:
            break
        page.wait_for_timeout(100)
        page.reload()
    prod = page.locator("h2:has-text('Stages') + table tr", has_text="prod")
    expect(prod.locator("td").nth(1)).to_have_text("2")
    shot(page, "channel")
    page.click("text=diff with 1")
    expect(page.locator("pre.diff .add", has_text="new-checkout").first).to_be_visible()
    shot(page, "channel-diff")
    expect(page.locator("button", has_text="Roll back")).to_have_count(0)  # a viewer's page
    viewer.close()

    # Roll prod back to version 1: a deployment through prod's approval and test.
    operating = browser.new_context()
    olga = sign_in(operating, console, "olga")
    olga.goto(f"{console.base}/channels/flags")
    row = olga.locator("h2:has-text('Stages') + table tr", has_text="prod")
    row.locator("select[name=version]").select_option("1")
    row.locator("button", has_text="Roll back").click()
    expect(olga.locator(".note")).to_contain_text("stage prod goes back to version 1")
    rollback_run = olga.url.split("/runs/")[1].split("?")[0]
    waiting_for_decision(console, rollback_run)
    with console.rest("ann") as rest:
        decided = rest.post(f"/api/v1/runs/{rollback_run}/decisions", json={"decision": "approve"})
        assert decided.status_code == 201, decided.text
    expect(olga.locator("[data-run-status]")).to_contain_text("SUCCEEDED", timeout=15_000)
    olga.goto(f"{console.base}/channels/flags")
    prod = olga.locator("h2:has-text('Stages') + table tr", has_text="prod")
    expect(prod.locator("td").nth(1)).to_have_text("1")
    operating.close()


def test_csrf_and_roles_guard_every_action(browser: Browser, console: Console) -> None:
    """A POST without this session's CSRF token is refused; so is an action the role does
    not grant, even with the right token; admin pages are refused to others."""
    run_id = start_run(console, "chatty", {"lines": 30, "pause": 0.2}, "olga")
    made = browser.new_context()
    olga = sign_in(made, console, "olga")
    no_csrf = olga.request.post(f"{console.base}/runs/{run_id}/cancel", max_redirects=0)
    assert no_csrf.status == 403
    wrong = olga.request.post(
        f"{console.base}/runs/{run_id}/cancel", form={"csrf": "guess"}, max_redirects=0
    )
    assert wrong.status == 403
    olga.goto(f"{console.base}/admin/tokens")
    expect(olga.locator("h1")).to_have_text("Not allowed")
    olga.goto(f"{console.base}/runs/{run_id}")
    olga.click("text=Cancel run")
    expect(olga.locator(".note")).to_contain_text("cancel requested")
    expect(olga.locator("[data-run-status]")).to_contain_text(
        re.compile("CANCELLED|ROLLED_BACK"), timeout=15_000
    )
    # The page reloads itself once the run has ended (a reload from here would race it):
    # the finished run's page offers a re-run.
    rerun = olga.locator("button:has-text('Re-run')")
    expect(rerun).to_be_visible(timeout=15_000)
    rerun.click()
    expect(olga.locator(".note")).to_contain_text(f"a re-run of {run_id} started")
    expect(olga.locator(".facts")).to_contain_text(run_id)  # "Re-run of" links back
    made.close()


def test_admin_makes_and_revokes_a_token_and_its_sessions_end(
    browser: Browser, console: Console
) -> None:
    """An admin makes a token (its secret shown once), someone signs in with it, the admin
    revokes it: that browser's session ends at once."""
    admin_context = browser.new_context()
    root = sign_in(admin_context, console, "root")
    root.click("nav >> text=Admin")
    root.fill("#name", "temp")
    root.select_option("#role", "viewer")
    root.click("form[action='/admin/tokens'] button[type=submit]")
    secret = root.locator("[data-secret]").inner_text().strip()
    assert secret.startswith("lg_")
    user_context = browser.new_context()
    console.tokens["temp"] = secret
    user = sign_in(user_context, console, "temp")
    root.goto(f"{console.base}/admin/tokens")  # shown once: not on the page any more
    expect(root.locator("[data-secret]")).to_have_count(0)
    root.locator("tr", has_text="temp").locator("button", has_text="Revoke").click()
    expect(root.locator(".note")).to_contain_text("revoked")
    shot(root, "tokens")
    user.goto(f"{console.base}/runs")
    expect(user).to_have_url(re.compile("/sign-in"))
    root.goto(f"{console.base}/admin/audit")
    expect(root.locator("table")).to_contain_text("token.revoke")
    admin_context.close()
    user_context.close()


def test_pages_carry_a_strict_content_security_policy(console: Console) -> None:
    """No inline script may run, no page may be framed; unknown ids answer with a page."""
    with httpx.Client(base_url=console.base) as http:
        answer = http.get("/sign-in")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script>" not in answer.text
        assert not re.search(r"\son[a-z]+\s*=", answer.text)
        signed = http.post("/sign-in", data={"token": console.tokens["vic"], "next": "/runs"})
        assert signed.status_code == 303 and "lockgate_session" in http.cookies
        missing = http.get("/runs/nope")
        assert missing.status_code == 404 and "Not found" in missing.text
        bad = http.get("/runs", params={"status": "NOPE"})
        assert bad.status_code == 422 and "status: one of" in bad.text
