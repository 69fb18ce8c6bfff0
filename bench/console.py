"""Server time of the web console's pages with a big history.

    python bench/console.py --db sqlite                    # 1,000,000 finished runs
    python bench/console.py --db postgres --runs 1000000   # starts its own PostgreSQL

Fills a store with ``--runs`` finished runs (three steps and four events each), one run with
``--log-lines`` log lines, and ``--approvals`` runs waiting at an approval step; then times,
in this process through the real ASGI application (a signed-in viewer's session): the runs
list (first page, and a cursor deep in the history), the run page of the run with the many
log lines, its full logs page, and the approvals inbox. One JSON line per page: ``page``,
``p50_ms``, ``p95_ms``; then one with the fill time and the raw commit rate of the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import text

from common import add_db_args, database, percentile, raw_commit_rate
from lockgate import App, Settings
from lockgate.console.core import COOKIE
from lockgate.core.cursor import encode_cursor
from lockgate.server.asgi import create_asgi

BASE_TIME = 1_700_000_000.0
PIPELINE_VERSION = "b" * 64


def repr_json(value: object) -> str:
    """``value`` as a SQL string literal of its JSON text."""
    return "'" + json.dumps(value).replace("'", "''") + "'"


def fill(app: App, runs: int, log_lines: int, approvals: int) -> None:
    """Rows straight into the tables, in a few INSERT ... SELECT statements per table."""
    postgres = app.store.dialect == "postgresql"
    numbers = (
        "generate_series(0, :last) AS n(i)"
        if postgres
        else "(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
        " SELECT i FROM n)"
    )
    run_id = "lpad(i::text, 32, '0')" if postgres else "printf('%032d', i)"
    false = "false" if postgres else "0"

    def as_json(sql: str) -> str:
        return f"CAST({sql} AS JSON)" if postgres else sql

    definition = json.dumps({"name": "bench", "namespace": "default", "steps": []})

    def write(conn: Any) -> None:
        conn.execute(
            text(
                "INSERT INTO pipelines (version, namespace, name, definition, registered_at) "
                f"VALUES (:v, 'default', 'bench', {as_json(':d')}, :t)"
            ),
            {"v": PIPELINE_VERSION, "d": definition, "t": BASE_TIME},
        )
        total = runs + approvals + 1
        conn.execute(
            text(
                "INSERT INTO runs (id, namespace, pipeline, version, status, params, context, "
                "noop, requested_by, lease_token, cancel_requested, created_at, updated_at, "
                f"finished_at) SELECT {run_id}, 'default', 'bench', :v, "
                f"CASE WHEN i >= :finished THEN 'WAITING' ELSE 'SUCCEEDED' END, "
                f"{as_json(repr_json({'n': 1}))}, {as_json(repr_json({}))}, {false}, 'bench', "
                f"0, {false}, "
                ":t + i * 0.01, :t + i * 0.01, "
                f"CASE WHEN i >= :finished THEN NULL ELSE :t + i * 0.01 + 0.5 END FROM {numbers}"
            ),
            {"v": PIPELINE_VERSION, "t": BASE_TIME, "last": total - 1, "finished": runs + 1},
        )
        for position, step in enumerate(("build", "deploy", "verify")):
            conn.execute(
                text(
                    "INSERT INTO steps (run_id, name, position, status, attempt, started_at, "
                    f"finished_at) SELECT id, '{step}', {position}, "
                    "CASE WHEN status = 'WAITING' THEN 'WAITING' ELSE 'COMPLETED' END, 1, "
                    "created_at, finished_at FROM runs"
                )
            )
        for status in ("PENDING", "RUNNING", "COMPLETED", "SUCCEEDED"):
            conn.execute(
                text(
                    "INSERT INTO events (run_id, step, status, attempt, message, at) "
                    f"SELECT id, NULL, '{status}', NULL, NULL, created_at FROM runs"
                )
            )
        conn.execute(
            text(
                "INSERT INTO step_logs (run_id, step, level, message, at) "
                f"SELECT :run, 'build', 'info', 'compiling module ' || i || ' of the release', "
                f":t + i * 0.001 FROM {numbers}"
            ),
            {"run": f"{runs:032d}", "t": BASE_TIME, "last": log_lines - 1},
        )
        request = json.dumps({"message": "ship it?", "required": 2, "approvers": {}})
        conn.execute(
            text(
                "INSERT INTO approvals (run_id, step, request, requested_by, opened_at) "
                f"SELECT id, 'build', {as_json(':request')}, 'bench', created_at FROM runs "
                "WHERE status = 'WAITING'"
            ),
            {"request": request},
        )

    app.store.write(write)
    app.store.write(lambda conn: conn.execute(text("ANALYZE")))


async def timed(http: httpx.AsyncClient, path: str, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = await http.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}


async def measure(app: App, runs: int, repeat: int) -> list[dict[str, Any]]:
    token = app.tokens.create("bench", "approver")[1]
    cookie, _ = app.sessions.sign_in(token)
    transport = httpx.ASGITransport(app=create_asgi(app))
    deep = runs // 10  # a cursor nine tenths of the way back in history
    cursor = encode_cursor(BASE_TIME + deep * 0.01, f"{deep:032d}")
    chatty = f"{runs:032d}"
    pages = [
        ("runs", "/runs"),
        ("runs_deep_cursor", f"/runs?cursor={cursor}"),
        ("run_with_10k_log_lines", f"/runs/{chatty}"),
        ("run_logs_page_10k_lines", f"/runs/{chatty}/logs"),
        ("approvals_inbox", "/approvals"),
    ]
    found = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", cookies={COOKIE: cookie}
    ) as http:
        for name, path in pages:
            await http.get(path)  # warm
            found.append({"page": name, **await timed(http, path, repeat)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--log-lines", type=int, default=10_000)
    parser.add_argument("--approvals", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=40, help="requests per page")
    args = parser.parse_args()
    with database(args.db, args.url) as url:
        app = App(Settings(database_url=url))
        app.migrate()
        t0 = time.perf_counter()
        fill(app, args.runs, args.log_lines, args.approvals)
        filled = time.perf_counter() - t0
        results = asyncio.run(measure(app, args.runs, args.repeat))
        for row in results:
            print(json.dumps({"db": args.db, "runs": args.runs, **row}), flush=True)
        app.close()
        print(
            json.dumps(
                {
                    "db": args.db,
                    "runs": args.runs,
                    "fill_s": round(filled, 1),
                    "raw_commits_per_s": round(raw_commit_rate(url), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
