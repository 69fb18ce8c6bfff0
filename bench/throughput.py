"""Runs/s and steps/s of 3-step pipelines, and sequential start->done latency.

    python bench/throughput.py --db sqlite --runs 5000
    python bench/throughput.py --db postgres --runs 5000      # starts its own PostgreSQL
    python bench/throughput.py --db sqlite --otel             # the cost of tracing

With ``--otel`` (needs ``lockgate[otel]``) every phase runs twice, without and then with
traces exported over OTLP/HTTP (batch span processor) to a receiver in another process,
and the figures with tracing on carry an ``_otel`` suffix.

The last line printed is one JSON object with the figures, including the raw commit rate
of the same database measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import text

from bench_pipeline import FINISHED, bench, one_run
from common import add_db_args, database, percentile, raw_commit_rate
from lockgate import App, RunStatus, Settings
from lockgate.cli.server import tune_process

PIPELINE_FILE = str(Path(__file__).parent / "bench_pipeline.py")


async def throughput(app: App, runs: int, concurrency: int, processes: int = 1) -> dict[str, float]:
    """Create ``runs`` runs, then time workers executing all of them: one in this process,
    or ``processes`` ``lockgate worker`` subprocesses."""
    started = time.perf_counter()
    ids = [app.start_run("bench", {"n": 0}).id for _ in range(runs)]
    create_s = time.perf_counter() - started
    t0 = time.perf_counter()
    batches: dict[str, float] = {}
    if processes > 1:
        env = {
            **os.environ,
            "LOCKGATE_DATABASE_URL": app.settings.database_url,
            "LOCKGATE_CONCURRENCY": str(concurrency),
            "LOCKGATE_POLL_INTERVAL": "0.05",
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "lockgate", "worker", "--pipelines", PIPELINE_FILE],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(processes)
        ]
        while await asyncio.to_thread(app.store.count_active):
            await asyncio.sleep(0.05)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        # From the first step to the last finish, as the store recorded them: process
        # start-up (about a second of imports) is not the engine's throughput.
        first, last = app.store.read(
            lambda c: c.execute(
                text(
                    "SELECT (SELECT MIN(at) FROM events WHERE step IS NOT NULL),"
                    " (SELECT MAX(finished_at) FROM runs)"
                )
            ).one()
        )
        elapsed = last - first
    else:
        worker = app.worker(concurrency=concurrency)
        await worker.start()
        while await asyncio.to_thread(app.store.count_active):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        await worker.stop()
        batches = {
            "checkpoints_per_commit": worker.committer.ops / max(1, worker.committer.batches)
        }
    failed = [i for i in ids[:50] if app.get_run(i).run.status != RunStatus.SUCCEEDED]
    assert not failed, f"runs did not succeed: {failed}"
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": 3 * runs / elapsed,
        "create_per_s": runs / create_s,
        **batches,
    }


async def latency(
    app: App, finished: dict[str, asyncio.Event], count: int
) -> tuple[list[float], float]:
    """Start->done milliseconds of ``count`` runs started one after another, and the
    write transactions each run cost."""
    worker = app.worker()
    await worker.start()
    out: list[float] = []
    commits_before = app.store.commits
    try:
        for _ in range(count):
            out.append(await one_run(app, finished))
        commits = app.store.commits - commits_before
    finally:
        await worker.stop()
    return out, commits / count


async def phases(app: App, args: argparse.Namespace, suffix: str = "") -> dict[str, object]:
    tp = await throughput(app, args.runs, args.concurrency, args.workers)
    lat, per_run = await latency(app, FINISHED, args.latency_runs)
    figures = {
        **{k: round(v, 2) for k, v in tp.items()},
        "p50_ms": round(percentile(lat, 50), 3),
        "p95_ms": round(percentile(lat, 95), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "transactions_per_run_sequential": round(per_run, 2),
    }
    return {f"{k}{suffix}": v for k, v in figures.items()}


async def main_async(args: argparse.Namespace, url: str) -> dict[str, object]:
    app = App(Settings(database_url=url, poll_interval=0.05, concurrency=args.concurrency))
    app.migrate()
    app.register(bench)
    if not args.otel:
        figures = await phases(app, args)
        app.close()
        return figures
    # Off and on in turns, ``--rounds`` times, in the order off-on, on-off, off-on...: the
    # database grows with every phase, and each side must come first as often. Each side's
    # best round is reported (the machine's noise is a few percent from one round to the
    # next), with every round's steps/s beside it.
    offs: list[dict[str, object]] = []
    ons: list[dict[str, object]] = []
    with otlp_sink() as (endpoint, received):
        for round_ in range(args.rounds):
            if round_ % 2 == 0:
                offs.append(await phases(app, args))
            on = traced(app, endpoint)
            provider = on.tracer.provider  # type: ignore[attr-defined]
            ons.append(await phases(on, args, "_otel"))
            on.close()  # exports what is left; the exporter process ends
            for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
                os.environ.pop(name)
            if round_ % 2 == 1:
                offs.append(await phases(app, args))
        spans = received()
        sdk_cost = sdk_span_cost(provider)
        provider.shutdown()
    figures = {**best(offs, "steps_per_s"), **best(ons, "steps_per_s_otel")}
    figures["steps_per_s_rounds"] = [f["steps_per_s"] for f in offs]
    figures["steps_per_s_otel_rounds"] = [f["steps_per_s_otel"] for f in ons]
    figures["spans_received"] = spans
    # Per run: its span, three steps' and one run_finished hook's.
    figures["spans_expected"] = 5 * (args.runs + args.latency_runs) * args.rounds
    figures["sdk_us_per_span"] = round(sdk_cost, 1)
    # Positive: tracing made it worse (fewer steps/s, a longer p50).
    off, on = float(figures["steps_per_s"]), float(figures["steps_per_s_otel"])  # type: ignore[arg-type]
    figures["otel_cost_steps_per_s_pct"] = round(100 * (off - on) / off, 1)
    off, on = float(figures["p50_ms"]), float(figures["p50_ms_otel"])  # type: ignore[arg-type]
    figures["otel_cost_p50_ms_pct"] = round(100 * (on - off) / off, 1)
    app.close()
    return figures


def best(rounds: list[dict[str, object]], key: str) -> dict[str, object]:
    """The round with the most ``key``."""
    return max(rounds, key=lambda f: float(f[key]))  # type: ignore[arg-type]


def sdk_span_cost(provider: Any, count: int = 20_000) -> float:
    """Microseconds per span of the SDK alone (three attributes, started and ended, then
    exported through the same processor): the floor under any instrumentation."""
    tracer = provider.get_tracer("floor")
    attributes = {"cicd.pipeline.run.id": "r", "cicd.pipeline.task.name": "s", "attempt": 1}
    t0 = time.perf_counter()
    for _ in range(count // 1000):  # in batches the processor's queue (2,048) holds whole
        for _ in range(1000):
            tracer.start_span("step", attributes=attributes).end()
        provider.force_flush()
    return (time.perf_counter() - t0) / (count // 1000 * 1000) * 1e6


def traced(app: App, endpoint: str) -> App:
    """An App on ``app``'s database whose tracing is on as ``OTEL_EXPORTER_OTLP_ENDPOINT``
    sets it up: runs' spans through lockgate's exporter process, with the SDK's batch span
    processor."""
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ["OTEL_SERVICE_NAME"] = "lockgate-bench"
    on = App(app.settings)
    assert on.tracer.on, "tracing did not turn on: is lockgate[otel] installed?"
    on.register(bench)
    return on


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, Callable[[], int]]]:
    """An OTLP/HTTP receiver in a process of its own (it only counts spans): yields its
    endpoint and a function that asks it how many spans it received."""
    code = (
        "import sys; from lockgate.testing import TraceReceiver\n"
        "r = TraceReceiver(keep=False).start(); print(r.endpoint, flush=True)\n"
        "for _ in sys.stdin: print(r.count, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    endpoint = proc.stdout.readline().strip()

    def received() -> int:
        assert proc.stdin is not None and proc.stdout is not None
        time.sleep(1.0)  # the last batch is on its way
        proc.stdin.write("count\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())

    try:
        yield endpoint, received
    finally:
        proc.stdin.close()
        proc.wait(10)


def main() -> None:
    tune_process()  # as `lockgate server` and `lockgate worker` do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=500, help="runs per worker at once")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes for the throughput phase"
    )
    parser.add_argument(
        "--otel", action="store_true", help="measure again with traces exported (OTLP/HTTP)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="with --otel: rounds off and on")
    args = parser.parse_args()
    with database(args.db, args.url) as url:
        raw = raw_commit_rate(url, clients=1)
        raw8 = raw_commit_rate(url, clients=8) if args.db == "postgres" else None
        result = asyncio.run(main_async(args, url))
    figures = {
        "db": args.db,
        "runs": args.runs,
        "workers": args.workers,
        **result,
        "raw_commits_per_s": round(raw, 1),
    }
    if raw8 is not None:
        figures["raw_commits_per_s_8_clients"] = round(raw8, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
