"""Step latency while retention prunes a million runs, against the same latency without.

    python bench/prune.py --db sqlite                       # 1,000,000 runs to prune
    python bench/prune.py --db postgres --runs 1000000      # starts its own PostgreSQL

Fills the store with ``--runs`` finished runs from long ago (three steps, four events and
ten log lines each), then measures the start-to-done latency of runs started one after
another by one worker while the retention pass (as ``lockgate server`` runs it) deletes
them all. Retention goes and pauses in alternating windows of ``--window`` seconds, so the
samples with and without it see the same database. The last line is JSON: both sets' p50
and p99, the p99 increase, how fast the runs went while retention went, and the raw commit
rate of the same database in the same run.
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

from bench_pipeline import bench, one_run
from common import add_db_args, database, percentile, raw_commit_rate
from console import fill
from lockgate import App, Settings
from lockgate.cli.server import tune_process
from lockgate.engine.retention import Retention


class Enough(Exception):
    """Stops retention when the measurement has taken its time."""


async def measure(app: App, runs: int, window: float, seconds: float) -> dict[str, object]:
    """Latency samples of one worker, in alternating windows of ``window`` seconds with
    retention going and paused, until retention has pruned everything (or ``seconds``
    have gone): both sets see the same database size, cache and disk state, so what
    differs is the pruning."""
    app.register(bench)
    retention = Retention(app.store, app.settings, app.metrics)
    going, enough = threading.Event(), threading.Event()
    outcome: dict[str, float] = {"pruned": 0}

    def between_batches(gone: dict[str, int]) -> None:
        outcome["pruned"] = sum(gone.values())
        going.wait()  # a paused window holds retention between two batches
        if enough.is_set():
            raise Enough

    def prune() -> None:
        t0 = time.perf_counter()
        try:
            gone = retention.prune(paced=True, progress=between_batches)
            outcome["pruned"] = sum(gone.values())
        except Enough:
            pass
        outcome["prune_s"] = time.perf_counter() - t0

    worker = app.worker()
    await worker.start()
    pruner = threading.Thread(target=prune, name="prune", daemon=True)
    pruner.start()
    samples: dict[bool, list[float]] = {False: [], True: []}
    pruning_s = 0.0
    deadline = time.perf_counter() + seconds
    try:
        while pruner.is_alive() and time.perf_counter() < deadline:
            on = not going.is_set()
            if on:
                going.set()
            else:
                going.clear()
            ends = time.perf_counter() + window
            while time.perf_counter() < ends and pruner.is_alive():
                samples[on].append(await one_run(app))
            if on:
                pruning_s += window
    finally:
        enough.set()
        going.set()
        pruner.join()
        await worker.stop()
    before, during = samples[False], samples[True]
    p99_before, p99_during = percentile(before, 99), percentile(during, 99)
    pruned = int(outcome["pruned"])
    return {
        "runs": runs,
        "pruned": pruned,
        "prune_s": round(outcome["prune_s"], 1),
        "pruned_per_s": round(pruned / max(pruning_s, window), 1),
        "baseline_p50_ms": round(percentile(before, 50), 3),
        "baseline_p99_ms": round(p99_before, 3),
        "during_p50_ms": round(percentile(during, 50), 3),
        "during_p99_ms": round(p99_during, 3),
        "p99_increase": round(p99_during / p99_before - 1, 3),
        "samples": [len(before), len(during)],
    }


def main() -> None:
    tune_process()  # as `lockgate server` and `lockgate worker` do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument(
        "--window", type=float, default=1.0, help="seconds of each pruning or paused window"
    )
    parser.add_argument("--batch", type=int, default=Settings().prune_batch, help="runs per batch")
    parser.add_argument(
        "--share", type=float, help="of the database's time (default: the server's)"
    )
    parser.add_argument(
        "--seconds", type=float, default=float("inf"), help="stop measuring after (default: done)"
    )
    args = parser.parse_args()
    with database(args.db, args.url) as url:
        settings = Settings(
            database_url=url, poll_interval=0.05, prune_batch=args.batch, prune_share=args.share
        )
        app = App(settings)
        app.migrate()
        t0 = time.perf_counter()
        fill(app, args.runs, log_lines=10, approvals=0)
        filled = time.perf_counter() - t0
        found = asyncio.run(measure(app, args.runs, args.window, args.seconds))
        app.close()
        print(
            json.dumps(
                {
                    "db": args.db,
                    "batch": args.batch,
                    "share": Retention(app.store, settings).share(),
                    **found,
                    "fill_s": round(filled, 1),
                    "raw_commits_per_s": round(raw_commit_rate(url), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
