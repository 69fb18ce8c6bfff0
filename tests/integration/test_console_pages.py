"""Console pages over real HTTP, on SQLite and PostgreSQL: forms, pages of logs, schedules."""

from __future__ import annotations

import hashlib
import hmac
import re

import httpx
from api_support import Served, wait_done

from lockgate import Pipeline, StepContext, step
from lockgate.console.core import COOKIE
from lockgate.console.runs import LOG_PAGE


@step
def noisy(ctx: StepContext) -> None:
    for n in range(LOG_PAGE + 500):
        ctx.log.info("line %d%s", n, " needle" if n % 700 == 0 else "")


def browser(served: Served, role: str) -> tuple[httpx.AsyncClient, str]:
    """A client holding a console session of ``role``, and the session's CSRF token."""
    cookie, session = served.app.sessions.sign_in(served.tokens[role])
    client = served.client(None)
    client.cookies.set(COOKIE, cookie)
    return client, session.csrf


async def test_a_start_form_refuses_bad_values_listing_each(served: Served) -> None:
    """Values that are not of their field's type, and params the pipeline refuses, come back
    as a page listing every problem; nothing starts. Good values start the run."""
    http, csrf = browser(served, "operator")
    async with http:
        form = await http.get("/pipelines/default/deploy")
        assert form.status_code == 200 and 'name="param.replicas"' in form.text
        bad = await http.post(
            "/pipelines/default/deploy/start",
            data={"csrf": csrf, "param.env": "", "param.replicas": "three"},
        )
        assert bad.status_code == 422
        assert "replicas: &#39;three&#39; is not a whole number" in bad.text
        assert served.app.list_runs() == []
        missing = await http.post(
            "/pipelines/default/deploy/start", data={"csrf": csrf, "param.replicas": "2"}
        )
        assert missing.status_code == 422 and "env" in missing.text
        started = await http.post(
            "/pipelines/default/deploy/start",
            data={"csrf": csrf, "param.env": "prod", "param.replicas": "2"},
        )
        assert started.status_code == 303
        run_id = started.headers["location"].split("/runs/")[1].split("?")[0]
        async with served.client("viewer") as api:
            done = await wait_done(api, run_id)
        assert done["params"] == {"env": "prod", "replicas": 2}
        assert done["requested_by"] == "operator-bot"


async def test_logs_come_in_pages_can_be_searched_and_downloaded_whole(served: Served) -> None:
    """A run's logs page shows LOG_PAGE lines and a link to the next page; a search finds
    lines on every page; the download has every line, without escape sequences."""
    served.app.register(Pipeline("noisy", [noisy]))
    run = served.app.start_run("noisy")
    async with served.client("viewer") as api:
        await wait_done(api, run.id)
    http, _ = browser(served, "viewer")
    async with http:
        first = await http.get(f"/runs/{run.id}/logs")
        assert first.text.count('class="line ') == LOG_PAGE
        later = re.search(r'href="\?([^"]*after=\d+)"', first.text)
        assert later is not None
        second = await http.get(f"/runs/{run.id}/logs?{later.group(1).replace('&amp;', '&')}")
        assert second.text.count('class="line ') == 500
        found = await http.get(f"/runs/{run.id}/logs", params={"q": "needle"})
        assert found.text.count('class="line ') == 3  # lines 0, 700 and 1400
        whole = await http.get(f"/runs/{run.id}/logs.txt")
        assert whole.headers["content-disposition"].startswith("attachment")
        assert len(whole.text.splitlines()) == LOG_PAGE + 500
        missing = await http.get("/runs/nope/logs")
        assert missing.status_code == 404


async def test_a_schedule_page_shows_its_next_ticks_and_pauses(served: Served) -> None:
    """A schedule's page lists its next five ticks; an admin pauses it from the page."""
    schedule = served.app.schedules.create(pipeline="deploy", cron="0 3 * * *", params={"env": "x"})
    http, csrf = browser(served, "admin")
    async with http:
        page = await http.get(f"/triggers/schedules/{schedule.id}")
        assert page.status_code == 200
        ticks = re.findall(r"<li><time datetime=", page.text)
        assert len(ticks) == 5 and "03:00:00 UTC" in page.text
        paused = await http.post(f"/triggers/schedules/{schedule.id}/pause", data={"csrf": csrf})
        assert paused.status_code == 303
        assert served.app.schedules.get(schedule.id).enabled is False
        unknown = await http.get("/triggers/nope/x")
        assert unknown.status_code == 404


async def test_an_admin_applies_retention_from_the_console(served: Served) -> None:
    """The admin page counts (or deletes) what retention lets go, and says so."""
    http, csrf = browser(served, "admin")
    async with http:
        counted = await http.post("/admin/prune", data={"csrf": csrf, "dry_run": "1"})
        assert counted.status_code == 303
        shown = await http.get(counted.headers["location"])
        assert "retention would delete 0 runs (none)" in shown.text
        # Threat: words put on a console page by a link. ?note= is not shown.
        crafted = await http.get("/admin/tokens?note=call+0800+SCAM+to+unlock")
        assert "SCAM" not in crafted.text


async def test_a_run_names_the_delivery_that_started_it(served: Served) -> None:
    """A run started by a webhook delivery records it; its page names the delivery, and
    links to the trigger only for an admin (a trigger's id is not for viewers)."""
    secret = "console-delivery-secret"
    trigger = served.app.webhooks.create(
        provider="generic", pipeline="deploy", secret=secret, params={"env": "${payload.env}"}
    )
    body = b'{"env": "qa"}'
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with served.client(None) as anyone:
        sent = await anyone.post(
            f"/hooks/{trigger.id}", content=body, headers={"X-Signature": signature}
        )
    assert sent.status_code == 202, sent.text
    delivery_id, [run_id] = sent.json()["delivery_id"], sent.json()["run_ids"]
    assert served.app.run_record(run_id).delivery_id == delivery_id
    viewer, _ = browser(served, "viewer")
    async with viewer:
        page = (await viewer.get(f"/runs/{run_id}")).text
        assert f"webhook delivery #{delivery_id}" in page and trigger.id not in page
    admin, _ = browser(served, "admin")
    async with admin:
        page = (await admin.get(f"/runs/{run_id}")).text
        assert f'href="/triggers/webhooks/{trigger.id}"' in page
    schedule = served.app.schedules.create(
        pipeline="deploy", interval_seconds=60, params={"env": "x"}
    )
    assert served.app.schedules.tick(now=schedule.next_fire_at) == 1
    [ticked] = served.app.deliveries.list(schedule.id)
    assert served.app.run_record(ticked.run_ids[0]).delivery_id == ticked.id


async def test_an_admin_creates_and_edits_triggers_from_forms(served: Served) -> None:
    """The forms made from each kind's settings create a webhook (with a secret made and
    shown once, or the admin's own), a schedule and a poller, and edit them: changed fields
    change, emptied lists clear, bad values come back listed and change nothing."""
    http, csrf = browser(served, "admin")
    app = served.app
    async with http:
        form = await http.get("/triggers/webhooks/new")
        assert form.status_code == 200
        assert 'name="provider"' in form.text and 'type="password"' in form.text
        made = await http.post(
            "/triggers/webhooks/new",
            data={
                "csrf": csrf,
                "provider": "github",
                "pipeline": "deploy",
                "events": "push, release",
                "branches": "main",
                "params": '{"env": "prod", "commit": "${event.commit}"}',
            },
        )
        assert made.status_code == 201  # the secret made for it is in this answer only
        secret = re.search(r"data-secret>([^<]+)<", made.text)
        assert secret is not None and len(secret.group(1)) >= 32
        (hook,) = app.webhooks.list()
        assert (hook.events, hook.branches) == (["push", "release"], ["main"])
        assert hook.params == {"env": "prod", "commit": "${event.commit}"}
        body = b'{"ref": "refs/heads/main", "after": "abc123"}'
        signature = hmac.new(secret.group(1).encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
        async with served.client(None) as provider:
            wrong = await provider.post(
                f"/hooks/{hook.id}",
                content=body,
                headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64},
            )
            assert wrong.status_code == 401
            signed = await provider.post(
                f"/hooks/{hook.id}",
                content=body,
                headers={**headers, "X-Hub-Signature-256": f"sha256={signature}"},
            )
        assert signed.status_code == 202, signed.text  # the secret shown is the one kept
        own = await http.post(
            "/triggers/webhooks/new",
            data={"csrf": csrf, "provider": "gitlab", "pipeline": "deploy", "secret": "s" * 20},
        )
        assert own.status_code == 303  # the admin's own secret is not shown back
        short = await http.post(
            "/triggers/webhooks/new",
            data={"csrf": csrf, "provider": "gitlab", "pipeline": "deploy", "secret": "short"},
        )
        assert short.status_code == 422 and "at least 16 characters" in short.text
        assert len(app.webhooks.list()) == 2

        edit = await http.get(f"/triggers/webhooks/{hook.id}/edit")
        assert edit.status_code == 200 and 'value="push, release"' in edit.text
        assert 'name="provider"' not in edit.text  # fixed once made
        changed = await http.post(
            f"/triggers/webhooks/{hook.id}/edit",
            data={"csrf": csrf, "pipeline": "deploy", "namespace": "default", "events": "push"},
        )
        assert changed.status_code == 303
        assert "note" not in changed.headers["location"]  # a flash, not a URL parameter
        shown = await http.get(changed.headers["location"])
        assert "changed branches, events" in shown.text
        # Shown again if that page reloads itself; gone once the person moves on.
        assert "changed branches" in (await http.get(changed.headers["location"])).text
        assert "changed branches" not in (await http.get("/triggers")).text
        assert "changed branches" not in (await http.get(changed.headers["location"])).text
        edited = app.webhooks.get(hook.id)
        assert (edited.events, edited.branches, edited.params) == (["push"], [], {})

        schedule = await http.post(
            "/triggers/schedules/new",
            data={"csrf": csrf, "pipeline": "deploy", "cron": "0 3 * * *", "misfire": "skip"},
        )
        assert schedule.status_code == 303
        (sched,) = app.schedules.list()
        assert sched.cron == "0 3 * * *" and sched.interval_seconds is None
        bad = await http.post(
            f"/triggers/schedules/{sched.id}/edit",
            data={"csrf": csrf, "pipeline": "deploy", "cron": "", "interval_seconds": "often"},
        )
        assert bad.status_code == 422 and "interval_seconds: &#39;often&#39; is not a number" in (
            bad.text
        )
        to_interval = await http.post(
            f"/triggers/schedules/{sched.id}/edit",
            data={"csrf": csrf, "pipeline": "deploy", "cron": "", "interval_seconds": "90"},
        )
        assert to_interval.status_code == 303
        now = app.schedules.get(sched.id)
        assert (now.cron, now.interval_seconds) == (None, 90.0)

        poller = await http.post(
            "/triggers/pollers/new",
            data={
                "csrf": csrf,
                "pipeline": "deploy",
                "repository": "https://git.example.com/app.git",
                "refs": "refs/heads/main",
                "interval_seconds": "30",
                "credentials": "GIT_TOKEN",
            },
        )
        assert poller.status_code == 303
        (poll,) = app.pollers.list()
        assert (poll.refs, poll.credentials) == (["refs/heads/main"], "GIT_TOKEN")
        cleared = await http.post(
            f"/triggers/pollers/{poll.id}/edit",
            data={
                "csrf": csrf,
                "pipeline": "deploy",
                "repository": "https://git.example.com/app.git",
                "refs": "refs/heads/main, refs/tags/*",
                "interval_seconds": "30",
            },
        )
        assert cleared.status_code == 303
        poll = app.pollers.get(poll.id)
        assert (poll.refs, poll.credentials) == (["refs/heads/main", "refs/tags/*"], None)
        queue = await http.post(
            "/triggers/queues/new",
            data={
                "csrf": csrf,
                "pipeline": "deploy",
                "broker": "redis",
                "url": "redis://queue.internal:6379/0",
                "source": "deploys",
                "match": '{"headers.env": ["prod"]}',
                "params": '{"commit": "${message.body.commit}"}',
            },
        )
        assert queue.status_code == 303, queue.text
        (made,) = app.queues.list()
        assert (made.dead_letter, made.match) == ("deploys.dead", {"headers.env": ["prod"]})
        page = await http.get(f"/triggers/queues/{made.id}/edit")
        assert 'name="broker"' not in page.text  # a broker does not change
        moved = await http.post(
            f"/triggers/queues/{made.id}/edit",
            data={
                "csrf": csrf,
                "pipeline": "deploy",
                "url": "redis://queue.internal:6379/0",
                "source": "releases",
                "batch_size": "50",
            },
        )
        assert moved.status_code == 303
        made = app.queues.get(made.id)
        assert (made.source, made.batch_size, made.match) == ("releases", 50, {})
        audit = [e.action for e in app.store.get_audit(0)]
        assert audit.count("trigger.create") == 2 and "poller.update" in audit
        assert "queue.create" in audit and "queue.update" in audit
