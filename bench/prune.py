"""Step latency while retention prunes a million runs, against the same latency without.

    python bench/prune.py --db sqlite                       # 1,000,000 runs to prune
    python bench/prune.py --db postgres --runs 1000000      # starts its own PostgreSQL

Fills the store with ``--runs`` finished runs from long ago (three steps and four events
each), measures the start-to-done latency of runs started one after another with nothing
else going on, then measures it again while the retention pass (as ``lockgate server`` runs
it: batches of ``LOCKGATE_PRUNE_BATCH`` runs with a short pause between) deletes them all.
The last line is JSON: the two latencies' p50 and p99, the p99 increase, how fast the runs
went, and the raw commit rate of the same database in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_pipeline import FINISHED, bench
from common import add_db_args, database, percentile, raw_commit_rate
from console import fill
from lockgate import App, Settings
from lockgate.cli.server import SWITCH_INTERVAL
from lockgate.retention import PAUSE, Retention
from throughput import latency


async def measure(app: App, runs: int, samples: int) -> dict[str, object]:
    app.register(bench)
    before, _ = await latency(app, FINISHED, samples)
    retention = Retention(app.store, app.settings, app.metrics)
    outcome: dict[str, object] = {}

    def prune() -> None:
        t0 = time.perf_counter()
        gone = retention.prune(pause=PAUSE)
        outcome["pruned"] = sum(gone.values())
        outcome["prune_s"] = time.perf_counter() - t0

    pruner = threading.Thread(target=prune, name="prune")
    pruner.start()
    during: list[float] = []
    while pruner.is_alive():
        chunk, _ = await latency(app, FINISHED, 20)
        during += chunk
    pruner.join()
    p99_before, p99_during = percentile(before, 99), percentile(during, 99)
    pruned = int(outcome["pruned"])  # type: ignore[call-overload]
    seconds = float(outcome["prune_s"])  # type: ignore[arg-type]
    return {
        "runs": runs,
        "pruned": pruned,
        "prune_s": round(seconds, 1),
        "pruned_per_s": round(pruned / seconds, 1),
        "baseline_p50_ms": round(percentile(before, 50), 3),
        "baseline_p99_ms": round(p99_before, 3),
        "during_p50_ms": round(percentile(during, 50), 3),
        "during_p99_ms": round(p99_during, 3),
        "p99_increase": round(p99_during / p99_before - 1, 3),
        "samples_during": len(during),
    }


def main() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)  # as `lockgate server` and `lockgate worker` do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300, help="latency runs, baseline")
    parser.add_argument("--batch", type=int, default=Settings().prune_batch, help="runs per batch")
    args = parser.parse_args()
    with database(args.db, args.url) as url:
        app = App(Settings(database_url=url, poll_interval=0.05, prune_batch=args.batch))
        app.migrate()
        t0 = time.perf_counter()
        fill(app, args.runs, log_lines=10, approvals=0)
        filled = time.perf_counter() - t0
        found = asyncio.run(measure(app, args.runs, args.samples))
        app.close()
        print(
            json.dumps(
                {
                    "db": args.db,
                    "batch": args.batch,
                    **found,
                    "fill_s": round(filled, 1),
                    "raw_commits_per_s": round(raw_commit_rate(url), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
