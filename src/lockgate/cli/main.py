"""``lockgate``: run durable deployment pipelines."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lockgate import __version__
from lockgate.cli.approvals import approvals_app, approve, reject
from lockgate.cli.channels import channels_app
from lockgate.cli.console import console_link
from lockgate.cli.context import CliState
from lockgate.cli.db import db_app
from lockgate.cli.init import init
from lockgate.cli.output import console, err_console
from lockgate.cli.pipelines import pipelines_app
from lockgate.cli.runs import run, runs_app
from lockgate.cli.server import configure_logging, server, worker
from lockgate.cli.sessions import sessions_app
from lockgate.cli.settings import settings_command
from lockgate.cli.tokens import tokens_app
from lockgate.cli.triggers import pollers_app, queues_app, schedules_app, triggers_app
from lockgate.errors import LockgateError, ParamsError
from lockgate.settings import DEFAULT_DATABASE_URL, Settings, absolute_database_url, redacted

app = typer.Typer(
    help="lockgate runs deployment pipelines durably: steps with rollback, retries and "
    "approvals that survive crashes, on SQLite (default) or PostgreSQL.",
    epilog="Exit codes: 0 ok; 1 run failed or other error; 2 invalid params, definition or "
    "settings; "
    "3 not found; 4 state conflict; 5 unauthorised or forbidden. Errors are one line: "
    "error (CODE): message.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# One file per resource; each command is registered here once.
for command in (server, worker, run, approve, reject):
    app.command()(command)
app.command("console-link")(console_link)
app.command("settings")(settings_command)
app.command("init")(init)
for name, group in (
    ("runs", runs_app),
    ("db", db_app),
    ("pipelines", pipelines_app),
    ("approvals", approvals_app),
    ("channels", channels_app),
    ("tokens", tokens_app),
    ("sessions", sessions_app),
    ("triggers", triggers_app),
    ("schedules", schedules_app),
    ("pollers", pollers_app),
    ("queues", queues_app),
):
    app.add_typer(group, name=name)


#: The settings file read from the working directory when there is one.
SETTINGS_FILE = "lockgate.toml"


def _shown_database() -> str:
    """The database commands run here would use (for ``--help``), without a password."""
    url = os.environ.get("LOCKGATE_DATABASE_URL") or DEFAULT_DATABASE_URL
    return redacted(absolute_database_url(url, Path.cwd()))


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
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="LOCKGATE_CONFIG",
            help=f"A TOML settings file (keys: the settings' names, as `lockgate settings` "
            f"lists them); default: ./{SETTINGS_FILE} if there is one. LOCKGATE_* "
            "variables win over it.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Global options."""
    if config is None and Path(SETTINGS_FILE).is_file():
        config = Path(SETTINGS_FILE)
    settings, sources = Settings.resolve(config=config)
    database = absolute_database_url(database_url or settings.database_url, Path.cwd())
    if database_url and database_url != os.environ.get("LOCKGATE_DATABASE_URL"):
        sources["database_url"] = "--db"
    settings = settings.with_(database_url=database)
    if log_dir:
        settings = settings.with_(log_dir=log_dir)
        if str(log_dir) != os.environ.get("LOCKGATE_LOG_DIR"):
            sources["log_dir"] = "--log-dir"
    ctx.obj = CliState(settings, url=url, token=token, sources=sources)
    ctx.call_on_close(ctx.obj.close)


def _print_version(value: bool) -> None:
    if value:
        console.print(__version__)
        raise typer.Exit()


@app.command()
def version() -> None:
    """Print lockgate's version."""
    console.print(__version__)


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
