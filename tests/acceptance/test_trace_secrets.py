"""Threat: credentials in exported traces. Anyone who can read the trace backend must not
find a webhook URL token, a one-time sign-in link's secret, or a configured secret in a
failing step's error or a rollback's cause there. A real server exports over OTLP/HTTP to a
receiver the test runs, and every byte it exported is searched."""

from __future__ import annotations

from pathlib import Path

import httpx
from servers import lockgate_server

from lockgate import App, RunStatus, Settings
from lockgate.testing import TraceReceiver, eventually

HERE = Path(__file__).parent
PIPELINES = str(HERE / "pipelines" / "leaky.py")
PASSWORD = "hunter2-correct-horse"
GERRIT = HERE.parent / "fixtures" / "webhooks" / "gerrit" / "patchset-created.json"


def test_no_credential_reaches_an_exported_span(db_url: str) -> None:
    app = App(Settings(database_url=db_url))
    app.migrate()
    _, admin = app.tokens.create("root", "admin")
    link = app.acting("test").sessions.make_link("admin", "alice")
    with TraceReceiver() as receiver:
        env = {
            "LOCKGATE_DATABASE_URL": db_url,
            "LOCKGATE_POLL_INTERVAL": "0.05",
            "LOCKGATE_SECRET_DB_PASSWORD": PASSWORD,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        with lockgate_server(env, "--pipelines", PIPELINES) as (url, server):
            auth = {"Authorization": f"Bearer {admin}"}
            made = httpx.post(
                f"{url}/api/v1/triggers",
                json={"provider": "gerrit", "pipeline": "leaky"},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            hook = made.json()["url"]
            token = hook.split("token=", 1)[1]
            answer = httpx.post(f"{url}{hook}", content=GERRIT.read_bytes())
            assert answer.status_code == 202, answer.text
            [hooked] = answer.json()["run_ids"]
            # Opening (not using) the link is enough to put its path in a request span.
            assert httpx.get(f"{url}/sign-in/link/{link}").status_code == 200
            started = httpx.post(f"{url}/api/v1/runs", json={"pipeline": "leaky"}, headers=auth)
            assert started.status_code == 201, started.text
            for run_id in (hooked, started.json()["id"]):
                eventually(
                    lambda run_id=run_id: RunStatus(app.get_run(run_id).run.status).terminal,
                    "the run to end",
                )
                assert app.get_run(run_id).run.status == RunStatus.ROLLED_BACK
            eventually(
                lambda: len([s for s in receiver.spans if s["name"] == "RUN leaky"]) == 2,
                "both runs' spans",
            )
            eventually(
                lambda: [s for s in receiver.spans if "sign-in" in str(s["name"])],
                "the link's request span",
            )
            # The exporter process runs isolated, and sees no secret of its parent's.
            [exporter] = _children(server.pid)
            environ = Path(f"/proc/{exporter}/environ").read_bytes()
            assert b"OTEL_EXPORTER_OTLP_ENDPOINT=" in environ
            assert b"LOCKGATE_" not in environ and PASSWORD.encode() not in environ
            assert b"\0-I\0" in Path(f"/proc/{exporter}/cmdline").read_bytes()

    spans = receiver.spans
    # The spans that would carry them are there...
    assert [s for s in spans if s["name"] == "rollback"]
    assert [s for s in spans if str(s["name"]).startswith("POST /hooks/")]
    # ...and no exported byte holds a credential.
    exported = b"".join(receiver.bodies)
    for credential in (token, link, PASSWORD):
        assert credential.encode() not in exported, credential
    # Request spans name the route, not the path that carries the secret.
    names = {str(s["name"]) for s in spans}
    assert "GET /sign-in/link/{secret}" in names
    assert "POST /hooks/{trigger_id}" in names
    app.close()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
