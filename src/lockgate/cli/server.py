"""``lockgate server`` and ``lockgate worker``: the API, the workers and the trigger routines."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import Annotated

import structlog
import typer

from lockgate.cli.banner import banner_lines
from lockgate.cli.context import ExamplesOpt, PipelinesOpt, definitions_from, state_of
from lockgate.cli.output import console, err_console
from lockgate.server import loops

#: GIL switch interval for server and worker processes (CPython's default is 5 ms).
SWITCH_INTERVAL = 0.0005
#: The garbage collector's first threshold for them (CPython's default is 700 allocations).
GC_THRESHOLD = 50_000


def tune_process() -> None:
    """The interpreter settings of a server or worker process (ours to set).

    The committer thread and the event loop hand the GIL back and forth on every
    checkpoint: a shorter switch interval cut the sequential p50 by a fifth. A worker
    allocates a great deal, most of it short-lived: what is loaded before work starts
    (modules, pipelines) is frozen out of the collector's scans, and its first threshold is
    raised so that it runs less often (about 30% more steps/s on SQLite). Figures in
    docs/performance.md.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def configure_logging(level: int) -> None:
    """lockgate's own log lines on stderr, from ``level`` up."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
    )


def _serve(
    ctx: typer.Context,
    paths: list[str],
    examples: bool,
    concurrency: int | None,
    listen: tuple[str, int] | None = None,
) -> None:
    configure_logging(logging.INFO)
    state = state_of(ctx)
    if concurrency is not None:
        state.settings = state.settings.with_(concurrency=concurrency)
    pipelines, channels = definitions_from(paths, examples, state.settings)
    lg = state.app(migrate=True)
    lg.register(*pipelines)
    lg.channels.register(*channels)
    if not pipelines and not channels:
        err_console.print(
            "[yellow]warning:[/yellow] no pipelines loaded; use --pipelines or --examples"
        )
    for p in pipelines:
        console.print(f"loaded [bold]{p.key}[/bold] version {p.version} ({len(p.steps)} steps)")
    for ch in channels:
        stages = ", ".join(st.name for st in ch.stages) or "no stages"
        console.print(f"loaded channel [bold]{ch.name}[/bold] ({stages})")
    for line in banner_lines(state.settings.database_url, pipelines, channels, listen):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print("press Ctrl-C to stop", highlight=False)

    tune_process()

    async def body() -> None:
        worker = lg.worker()
        await worker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = None
        if listen is not None:
            # The ASGI app (FastAPI, the console's templates) loads with the server only: a
            # worker, and every other command, starts faster without it.
            from lockgate.server.asgi import uvicorn_server

            server = uvicorn_server(lg, listen)

        def on_signal() -> None:
            stop.set()
            if server is not None:
                server.should_exit = True  # stop accepting, finish in-flight requests

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        # The API server also runs the background loops (lockgate.server.loops); a worker
        # only executes runs.
        triggers = loops.start(lg, stop) if server is not None else []
        try:
            if server is not None:
                await server.serve()
            else:
                await stop.wait()
        finally:
            stop.set()
            for task in triggers:
                await task
            await worker.stop()

    asyncio.run(body())


def server(
    ctx: typer.Context,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the API.")] = 8080,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Runs executed at once.")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            envvar="LOCKGATE_FORWARDED_ALLOW_IPS",
            help="Comma-separated proxy addresses whose X-Forwarded-For is believed "
            "(default: none; a client's own headers are ignored).",
        ),
    ] = None,
) -> None:
    """Run lockgate: the REST API and workers; upgrades the database; stops on Ctrl-C."""
    if forwarded_allow_ips is not None:
        state = state_of(ctx)
        proxies = tuple(x.strip() for x in forwarded_allow_ips.split(",") if x.strip())
        state.settings = state.settings.with_(forwarded_allow_ips=proxies)
    _serve(ctx, pipelines or [], examples, concurrency, (host, port))


def worker(
    ctx: typer.Context,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Runs executed at once.")] = None,
) -> None:
    """Run a worker only: claim and execute runs of the given pipelines until stopped."""
    _serve(ctx, pipelines or [], examples, concurrency)
