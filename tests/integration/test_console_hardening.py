"""The console's and REST's smaller guards, on a real server: login CSRF from ``Origin:
null``, sign-in throttling, the forced Secure cookie, safe download names, one masking rule
for run params, and who reads webhook payloads."""

from __future__ import annotations

import re

import httpx
import pytest
from api_support import Served, wait_done

from lockgate import Settings
from lockgate.console.core import COOKIE

SECRET = "prod-db-pass-24680"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A configured secret, and the Secure cookie forced (as behind a TLS proxy)."""
    return settings.with_(secrets={"DB": SECRET}, console_secure_cookie=True)


async def test_a_sign_in_from_origin_null_is_refused(served: Served) -> None:
    """Threat: login CSRF from a sandboxed frame or a data: page (they send Origin: null)."""
    link = served.app.acting("t").sessions.make_link("viewer", "vic")
    async with served.client(None) as browser:
        for path, data in (
            ("/sign-in", {"token": served.tokens["viewer"]}),
            (f"/sign-in/link/{link}", {}),
        ):
            r = await browser.post(path, data=data, headers={"Origin": "null"})
            assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
        # The link was not used up by the refused attempt.
        ok = await browser.post(f"/sign-in/link/{link}", follow_redirects=False)
        assert ok.status_code == 303


async def test_sign_in_attempts_are_throttled_per_address(served: Served) -> None:
    """Threat: guessing tokens or links as fast as the database takes writes. Past ten
    attempts a minute from one address, 429 with Retry-After, good token or not."""
    async with served.client(None) as browser:
        codes = [
            (await browser.post("/sign-in", data={"token": f"lg_guess_{n}"})).status_code
            for n in range(10)
        ]
        assert codes == [401] * 10
        limited = await browser.post("/sign-in", data={"token": served.tokens["admin"]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        link = served.app.acting("t").sessions.make_link("viewer", "vic")
        assert (await browser.post(f"/sign-in/link/{link}")).status_code == 429


async def test_the_secure_cookie_flag_can_be_forced(served: Served) -> None:
    async with served.client(None) as browser:
        r = await browser.post(
            "/sign-in", data={"token": served.tokens["viewer"]}, follow_redirects=False
        )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()


async def test_log_download_names_cannot_add_parameters(served: Served) -> None:
    """Threat: ``?step=`` injecting a second filename into Content-Disposition, and a name
    outside Latin-1 giving a 500."""
    run = served.app.start_run("deploy", {"env": "prod"})
    cookie, _ = served.app.sessions.sign_in(served.tokens["viewer"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        evil = await browser.get(
            f"/runs/{run.id}/logs.txt", params={"step": 'x"; filename="evil.html'}
        )
        assert evil.status_code == 200
        disposition = evil.headers["content-disposition"]
        assert len(re.findall(r"filename=", disposition)) == 1
        assert disposition.count(";") == 2 and disposition.count('"') == 2
        assert re.fullmatch(r'attachment; filename="[\w.-]+"; filename\*=UTF-8\'\'\S+', disposition)
        accented = await browser.get(f"/runs/{run.id}/logs.txt", params={"step": "déploiement"})
        assert accented.status_code == 200
        assert "filename*=UTF-8''" in accented.headers["content-disposition"]


async def test_every_face_masks_secrets_in_run_params(served: Served) -> None:
    """Threat: a secret typed into a param, shown by REST where the console masked it."""
    run = served.app.start_run("deploy", {"env": SECRET})
    async with served.client("viewer") as viewer:
        done = await wait_done(viewer, run.id)
        listed = (await viewer.get("/api/v1/runs")).text
    assert done["params"]["env"] == "***" and SECRET not in str(done)
    assert SECRET not in listed
    cookie, _ = served.app.sessions.sign_in(served.tokens["viewer"])
    async with served.client(None) as browser:
        browser.cookies.set(COOKIE, cookie)
        assert SECRET not in (await browser.get(f"/runs/{run.id}")).text
    assert served.app.get_run(run.id).run.params == {"env": "***", "replicas": 1}


async def test_webhook_payloads_are_an_operators_read(served: Served) -> None:
    """Viewers see a delivery's event and outcome; its whole payload is for operators."""
    async with served.client("admin") as admin:
        made = await admin.post(
            "/api/v1/triggers",
            json={
                "provider": "gerrit",
                "pipeline": "deploy",
                "params": {"env": "${event.branch}"},
            },
        )
    body = b'{"type": "ref-updated", "refUpdate": {"refName": "refs/heads/main", "project": "p"}}'
    async with httpx.AsyncClient(base_url=served.base) as sender:
        assert (await sender.post(made.json()["url"], content=body)).status_code == 202
    path = f"/api/v1/triggers/{made.json()['id']}/deliveries"
    async with served.client("viewer") as viewer, served.client("operator") as op:
        [seen] = (await viewer.get(path)).json()["deliveries"]
        [full] = (await op.get(path)).json()["deliveries"]
    assert seen["payload"] is None and seen["payload_hidden"] is True
    assert seen["event"]["branch"] == "main"
    assert full["payload"]["refUpdate"]["project"] == "p" and "payload_hidden" not in full
