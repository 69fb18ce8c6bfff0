"""Kill workers with SIGKILL at random points until every run has finished.

    python bench/chaos.py --db sqlite --runs 200
    python bench/chaos.py --db postgres --runs 200

Runs a 5-step pipeline (lifecycle hook, a rollback branch for every 5th run, one
idempotent=False step) in a worker subprocess, SIGKILLs it at random moments and restarts
it. An external ledger records every step execution. The last line is JSON: runs, finished,
lost, completed_step_reexecuted, non_idempotent_reexecuted, kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import add_db_args, database
from lockgate import App, RunStatus, Settings
from lockgate.specs.discover import load_pipelines

PIPELINE = str(Path(__file__).parent / "chaos_pipeline.py")


def start_worker(url: str, ledger: Path, concurrency: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOCKGATE_DATABASE_URL": url,
        "LOCKGATE_LEDGER": str(ledger),
        "LOCKGATE_LEASE_SECONDS": "1",
        "LOCKGATE_POLL_INTERVAL": "0.1",
        "LOCKGATE_CONCURRENCY": str(concurrency),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lockgate", "worker", "--pipelines", PIPELINE],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


#: The steps of the pipelines there that are not idempotent (must never run twice).
NOT_IDEMPOTENT = ("migrate", "once")


def audit(
    app: App, ids: list[str], ledger: Path, found: list[tuple[str, str]] | None = None
) -> dict[str, int]:
    """Compare the ledger with the store's events (``found`` collects the ``(run, step)``
    pairs that ran again after completing)."""
    executions: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        at, run_id, what, _attempt = line.split()
        executions[(run_id, what)].append(float(at))
    reexecuted = 0
    rerun_in_flight = 0
    finished = 0
    for run_id in ids:
        if RunStatus(app.get_run(run_id).run.status).terminal:
            finished += 1
        for event in app.events(run_id):
            if event.status == "COMPLETED" and event.step is not None:
                runs_of_step = executions[(run_id, event.step)]
                later = [t for t in runs_of_step if t > event.at]
                reexecuted += len(later)
                if later and found is not None:
                    found.append((run_id, event.step))
                rerun_in_flight += len(runs_of_step) - len(later) - 1
    once_runs = Counter(run_id for (run_id, what), ts in executions.items()
                        if what in NOT_IDEMPOTENT for _ in ts)  # fmt: skip
    return {
        "finished": finished,
        "lost": len(ids) - finished,
        "completed_step_reexecuted": reexecuted,
        "non_idempotent_reexecuted": sum(c - 1 for c in once_runs.values() if c > 1),
        # At-least-once re-runs of steps killed in flight (expected, and proof of kills).
        "in_flight_reruns": rerun_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with database(args.db, args.url) as url, tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.txt"
        ledger.touch()
        app = App(Settings(database_url=url))
        app.migrate()
        app.register(*load_pipelines([PIPELINE]))
        ids = [app.start_run("chaos", {"n": i, "fail": i % 5 == 0}).id for i in range(args.runs)]
        kills = 0
        deadline = time.monotonic() + args.timeout
        worker = start_worker(url, ledger, args.concurrency)
        try:
            while app.store.count_active() and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.2, 1.5))
                if not app.store.count_active():
                    break
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                kills += 1
                print(f"kill {kills}: {app.store.count_active()} runs still active", flush=True)
                worker = start_worker(url, ledger, args.concurrency)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        result = {"db": args.db, "runs": args.runs, **audit(app, ids, ledger), "kills": kills}
        statuses = Counter(app.get_run(i).run.status for i in ids)
        result["statuses"] = dict(statuses)
        app.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
