"""``lockgate``: run durable deployment pipelines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.markup import escape

from lockgate import __version__
from lockgate.app import App
from lockgate.cli.approvals import approvals_app, approve, reject
from lockgate.cli.banner import banner_lines
from lockgate.cli.channels import channels_app
from lockgate.cli.context import (
    BackgroundWorker,
    CliState,
    ExamplesOpt,
    PipelinesOpt,
    definitions_from,
    pipelines_from,
    whoami,
)
from lockgate.cli.output import Output, console, err_console, print_json, table, when
from lockgate.cli.runs import follow_run, runs_app
from lockgate.errors import LockgateError, ParamsError
from lockgate.settings import DEFAULT_DATABASE_URL, Settings, absolute_database_url
from lockgate.store.base import redacted
from lockgate.store.migrate import current

app = typer.Typer(
    help="lockgate runs deployment pipelines durably: steps with rollback, retries and "
    "approvals that survive crashes, on SQLite (default) or PostgreSQL.",
    epilog="Exit codes: 0 ok; 1 run failed or other error; 2 invalid params or definition; "
    "3 not found; 4 state conflict; 5 unauthorised or forbidden. Errors are one line: "
    "error (CODE): message.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
pipelines_app = typer.Typer(help="Registered pipelines.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(approvals_app, name="approvals")
app.add_typer(channels_app, name="channels")
app.command()(approve)
app.command()(reject)


#: GIL switch interval for server and worker processes (CPython's default is 5 ms).
SWITCH_INTERVAL = 0.0005


def _shown_database() -> str:
    """The database commands run here would use (for ``--help``), without a password."""
    url = os.environ.get("LOCKGATE_DATABASE_URL") or DEFAULT_DATABASE_URL
    return redacted(absolute_database_url(url, Path.cwd()))


def _state(ctx: typer.Context) -> CliState:
    state: CliState = ctx.obj
    return state


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="LOCKGATE_DATABASE_URL",
            help="sqlite:///path.db or postgresql://user@host/db; here that is "
            f"{_shown_database()}",
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(envvar="LOCKGATE_LOG_DIR", help="Also mirror step logs to files here."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="LOCKGATE_URL",
            help="Talk to this lockgate server over REST instead of the database.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LOCKGATE_TOKEN", help="Bearer token for --url.", show_default=False),
    ] = None,
) -> None:
    """Global options."""
    settings = Settings.from_env()
    database = absolute_database_url(database_url or settings.database_url, Path.cwd())
    settings = settings.with_(database_url=database)
    if log_dir:
        settings = settings.with_(log_dir=log_dir)
    ctx.obj = CliState(settings, url=url, token=token)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def version() -> None:
    """Print lockgate's version."""
    console.print(__version__)


def _serve(
    ctx: typer.Context,
    paths: list[str],
    examples: bool,
    concurrency: int | None,
    listen: tuple[str, int] | None = None,
) -> None:
    configure_logging(logging.INFO)
    state = _state(ctx)
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

    # The committer thread and the event loop hand the GIL back and forth on every
    # checkpoint; a shorter switch interval cut the sequential p50 by a fifth (see
    # docs/performance.md). This process is ours, so the setting is too.
    sys.setswitchinterval(SWITCH_INTERVAL)

    async def body() -> None:
        worker = lg.worker()
        await worker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = _api_server(lg, listen) if listen is not None else None

        def on_signal() -> None:
            stop.set()
            if server is not None:
                server.should_exit = True  # stop accepting, finish in-flight requests

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        # The API server also fires schedules and polls repositories; several servers still
        # start each tick's and each new commit's run once.
        triggers = (
            [
                asyncio.create_task(lg.schedules.run(stop)),
                asyncio.create_task(lg.pollers.run(stop)),
                asyncio.create_task(lg.webhooks.run(stop)),
            ]
            if server is not None
            else []
        )
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


def _api_server(lg: App, listen: tuple[str, int]) -> Any:
    """A uvicorn server for the API that leaves signal handling (and exit codes) to us."""
    import contextlib

    import uvicorn

    from lockgate.api import create_api

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn would re-raise SIGTERM after its shutdown and kill the process before
            # the workers stop; lockgate handles the signals itself and exits 0.
            yield

    proxies = list(lg.settings.forwarded_allow_ips)
    config = uvicorn.Config(
        create_api(lg),
        host=listen[0],
        port=listen[1],
        log_level="warning",
        lifespan="off",
        # Forwarded headers only from the proxies named in settings (none by default).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
    )
    return Server(config)


@app.command()
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
        state = _state(ctx)
        proxies = tuple(x.strip() for x in forwarded_allow_ips.split(",") if x.strip())
        state.settings = state.settings.with_(forwarded_allow_ips=proxies)
    _serve(ctx, pipelines or [], examples, concurrency, (host, port))


@app.command()
def worker(
    ctx: typer.Context,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Runs executed at once.")] = None,
) -> None:
    """Run a worker only: claim and execute runs of the given pipelines until stopped."""
    _serve(ctx, pipelines or [], examples, concurrency)


tokens_app = typer.Typer(help="API tokens (bearer tokens with a role).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who or what uses the token.")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    subject: Annotated[
        str | None,
        typer.Option(
            help="The person or machine the token acts for (default: --name). Tokens of "
            "one subject are one identity: their approvals count once."
        ),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    tokens = _state(ctx).app(migrate=True).tokens
    record, secret = tokens.create(name, role, subject=subject, actor=whoami())
    if output is Output.json:
        print_json({**record.to_dict(), "token": secret})
        return
    # The secret alone on stdout (TOKEN=$(lockgate tokens create ...)); the note on stderr.
    err_console.print(
        f"token {record.id} for {escape(record.identity)} ({role}); store it now, it is not "
        "shown again:",
        highlight=False,
    )
    sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context, output: Annotated[Output, typer.Option("--output", "-o")] = Output.table
) -> None:
    """Tokens (never their secrets)."""
    found = _state(ctx).app().tokens.list()
    if output is Output.json:
        print_json([t.to_dict() for t in found])
        return
    rows = [
        (
            t.id,
            t.name,
            t.identity,
            t.role,
            when(t.created_at),
            when(t.last_used_at),
            "revoked" if t.revoked_at else "active",
        )
        for t in found
    ]
    table(None, ["ID", "NAME", "SUBJECT", "ROLE", "CREATED", "LAST USED", "STATE"], rows)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token: it stops working at once."""
    record = _state(ctx).app().tokens.revoke(token_id, actor=whoami())
    console.print(f"token {record.id} ({escape(record.name)}) revoked")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema (safe to run repeatedly and concurrently)."""
    lg = _state(ctx).app(migrate=True)
    console.print(f"database at revision {current(lg.store)}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision the database is at."""
    console.print(current(_state(ctx).app().store) or "(empty: run `lockgate db upgrade`)")


def parse_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they are JSON) over a JSON file."""
    params: dict[str, Any] = {}
    problems: list[str] = []
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text())
        except (OSError, ValueError) as exc:
            raise ParamsError([f"{params_file}: {exc}"]) from exc
        if not isinstance(loaded, dict):
            raise ParamsError([f"{params_file}: must hold a JSON object"])
        params.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            problems.append(f"{pair!r}: expected key=value")
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    if problems:
        raise ParamsError(problems)
    return params


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, or namespace/name.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value; the value is parsed as JSON if it is JSON."),
    ] = None,
    params_file: Annotated[Path | None, typer.Option(help="JSON object of params.")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the run ends.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan only: steps see ctx.noop.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Start at most once per key.")] = None,
    pipelines: PipelinesOpt = None,
    examples: ExamplesOpt = False,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Start a run. With --pipelines/--examples it also runs it here; else a server does."""
    state = _state(ctx)
    params = parse_params(param or [], params_file)
    local = pipelines_from(pipelines or [], examples, state.settings)
    lg: Any
    if local:
        lg = state.app(migrate=True)
        lg.register(*local)
    else:  # the pipeline must be registered in the database (by a server or worker)
        lg = state.client() if state.url else state.app()
    me = whoami()
    record = lg.start_run(
        name, params, noop=dry_run, idempotency_key=idempotency_key, requested_by=me, actor=me
    )
    if not wait and not local:
        if output is Output.json:
            print_json(record.to_dict())
        else:
            console.print(f"started run {record.id} of {record.namespace}/{record.pipeline}")
        return
    if local:
        with BackgroundWorker(lg):
            status = follow_run(lg, record.id, output, timeout)
    else:
        status = follow_run(lg, record.id, output, timeout)
    raise typer.Exit(0 if status == "SUCCEEDED" else 1)


@pipelines_app.command("list")
def pipelines_list(
    ctx: typer.Context, output: Annotated[Output, typer.Option("--output", "-o")] = Output.table
) -> None:
    """Pipelines registered in the database (the newest version of each)."""
    latest: dict[str, Any] = {}
    for rec in _state(ctx).client().pipelines():
        latest.setdefault(f"{rec.namespace}/{rec.name}", rec)
    if output is Output.json:
        print_json([r.to_dict() for r in latest.values()])
        return
    rows = [
        (
            key,
            r.version,
            len(r.definition.get("steps", [])),
            when(r.registered_at),
            r.definition.get("description", ""),
        )
        for key, r in sorted(latest.items())
    ]
    table(None, ["PIPELINE", "VERSION", "STEPS", "REGISTERED", "DESCRIPTION"], rows)


@pipelines_app.command("validate")
def pipelines_validate(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Pipeline files, directories or modules.")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Check pipeline files (and Python pipelines): every problem, with file and line."""
    loaded = pipelines_from(paths, False, _state(ctx).settings)
    if output is Output.json:
        print_json(
            [{"pipeline": p.key, "version": p.version, "steps": len(p.steps)} for p in loaded]
        )
        return
    for p in loaded:
        console.print(f"ok {p.key} version {p.version} ({len(p.steps)} steps)", highlight=False)


@pipelines_app.command("show")
def pipelines_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """A pipeline's steps and params schema (newest registered version)."""
    from lockgate.errors import PipelineNotFound

    found = _state(ctx).client().pipeline_versions(name.split("/")[-1])
    if not found:
        raise PipelineNotFound(f"no pipeline {name!r} is registered")
    rec = found[0]
    if output is Output.json:
        print_json(rec.to_dict())
        return
    console.print(f"[bold]{rec.namespace}/{rec.name}[/bold] version {rec.version}")
    steps = rec.definition.get("steps", [])
    rows = [
        (
            s["name"],
            s["input"],
            s["output"],
            s["retry"]["attempts"],
            "yes" if s["rollback"] else "-",
            "yes" if s["idempotent"] else "no",
        )
        for s in steps
    ]
    table(None, ["STEP", "INPUT", "OUTPUT", "ATTEMPTS", "ROLLBACK", "IDEMPOTENT"], rows)
    if rec.definition.get("params"):
        console.print_json(json.dumps(rec.definition["params"]))


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


def main() -> None:
    """Console entry point: one-line errors and meaningful exit codes."""
    # Commands show their own output; a worker's inner workings are the server's to log.
    configure_logging(logging.WARNING)
    try:
        app()
    except ParamsError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): params refused:", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  - {escape(problem)}", highlight=False)
        sys.exit(exc.exit_code)
    except LockgateError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
