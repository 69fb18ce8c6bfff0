"""Runs parked at an approval cost a worker no memory, and approving them resumes them fast.

    python bench/parked.py --db postgres               # 100,000 parked, 10,000 approved
    python bench/parked.py --db sqlite --runs 20000 --approve 5000

Starts ``--runs`` runs of a pipeline whose second step is an approval, and one ``lockgate
worker`` process (a subprocess, so its memory is its own) that takes each to the approval,
where it parks holding no worker slot. The worker's resident memory is read from /proc
before the runs and once every run is parked. Then ``--approve`` of them are approved, in
bulk decisions of ``--bulk`` runs each (``App.decide_many``: one transaction per bulk), or
with ``--bulk 1`` one ``App.decide`` per run from ``--deciders`` threads; ``--workers``
worker processes finish them. The last line is JSON: the memory growth, how fast runs
parked, decisions per second, and resumed runs per second from the first decision to the
last run finished, with the raw commit rate of the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import text

from common import add_db_args, database, raw_commit_rate
from lockgate import App, RunStatus, Settings
from lockgate.specs.discover import load_pipelines

PIPELINE = str(Path(__file__).parent / "parked_pipeline.py")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def count(app: App, status: str) -> int:
    stmt = text("SELECT COUNT(*) FROM runs WHERE status = :s")
    return int(app.store.read(lambda c: c.execute(stmt, {"s": status}).scalar_one()))


def wait_for(app: App, status: str, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while count(app, status) < n:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"only {count(app, status)} of {n} runs {status} in {timeout:g} s")
        time.sleep(0.2)
    return time.monotonic() - t0


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lockgate", "worker", "--pipelines", PIPELINE],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--approve", type=int, default=10_000)
    parser.add_argument("--bulk", type=int, default=1000, help="runs per bulk decision")
    parser.add_argument("--deciders", type=int, default=8, help="threads deciding at once")
    parser.add_argument("--workers", type=int, default=1, help="worker processes resuming")
    parser.add_argument("--concurrency", type=int, default=200, help="the worker's")
    args = parser.parse_args()
    with database(args.db, args.url) as url:
        app = App(Settings(database_url=url))
        app.migrate()
        app.register(*load_pipelines([PIPELINE]))
        env = {
            **os.environ,
            "LOCKGATE_DATABASE_URL": url,
            "LOCKGATE_CONCURRENCY": str(args.concurrency),
            "LOCKGATE_POLL_INTERVAL": "0.05",
        }
        worker = start_worker(env)
        helpers: list[subprocess.Popen[bytes]] = []
        try:
            time.sleep(3)  # started, its pipelines registered, its first claim made
            before = rss_mb(worker.pid)
            t0 = time.monotonic()
            ids = [app.start_run("gated").id for _ in range(args.runs)]
            started_s = time.monotonic() - t0
            parked_s = wait_for(app, RunStatus.WAITING.value, args.runs, 3600) + started_s
            time.sleep(2)  # settled
            parked_rss = rss_mb(worker.pid)
            chosen = ids[: args.approve]

            def approve(run_id: str) -> None:
                app.acting("bench").decide(run_id, "approve", step="gate")

            # More workers join for the resumption only: the memory figures are one worker's.
            helpers = [start_worker(env) for _ in range(args.workers - 1)]
            time.sleep(3 if helpers else 0)
            t1 = time.monotonic()
            if args.bulk > 1:
                for at in range(0, len(chosen), args.bulk):
                    answers = app.acting("bench").decide_many(
                        chosen[at : at + args.bulk], "approve", step="gate"
                    )
                    refused = [a for a in answers if isinstance(a, Exception)]
                    if refused:
                        raise SystemExit(f"{len(refused)} decisions refused: {refused[0]}")
            else:
                with ThreadPoolExecutor(args.deciders) as pool:
                    list(pool.map(approve, chosen))
            decided_s = time.monotonic() - t1
            wait_for(app, RunStatus.SUCCEEDED.value, args.approve, 3600)
            resumed_s = time.monotonic() - t1
            after_rss = rss_mb(worker.pid)
        finally:
            for w in [worker, *helpers]:
                w.send_signal(signal.SIGTERM)
            for w in [worker, *helpers]:
                w.wait(60)
        finished = sum(1 for i in chosen if app.get_run(i).run.status == RunStatus.SUCCEEDED)
        app.close()
        print(
            json.dumps(
                {
                    "db": args.db,
                    "parked": args.runs,
                    "approved": args.approve,
                    "bulk": args.bulk,
                    "workers": args.workers,
                    "finished": finished,
                    "rss_before_mb": round(before, 1),
                    "rss_parked_mb": round(parked_rss, 1),
                    "rss_growth_mb": round(parked_rss - before, 1),
                    "rss_after_resume_mb": round(after_rss, 1),
                    "parked_per_s": round(args.runs / parked_s, 1),
                    "decisions_per_s": round(args.approve / decided_s, 1),
                    "resumed_per_s": round(args.approve / resumed_s, 1),
                    "raw_commits_per_s": round(raw_commit_rate(url), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
