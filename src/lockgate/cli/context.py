"""What every CLI command shares: settings, the App, loading pipelines, a background worker."""

from __future__ import annotations

import asyncio
import getpass
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.app import App
from lockgate.channels.model import Channel
from lockgate.client import Client, SessionsClient, TokensClient
from lockgate.client.rest import RestClient
from lockgate.core.pipeline import Pipeline
from lockgate.errors import ParamsError
from lockgate.settings import Settings
from lockgate.specs.discover import load_definitions

EXAMPLES_MODULE = "lockgate.examples"

PipelinesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--pipelines",
        help="Python file, directory or module whose pipelines and channels to load (repeatable).",
    ),
]
ExamplesOpt = Annotated[
    bool, typer.Option(help="Also load the bundled example pipelines and channels.")
]


@dataclass
class CliState:
    """Settings from the environment and global options; the App, opened on first use."""

    settings: Settings
    url: str | None = None
    token: str | None = None
    #: Where each setting came from (``default``, a variable, the settings file, an option).
    sources: dict[str, str] = field(default_factory=dict)
    _app: App | None = field(default=None, repr=False)
    _remote: RestClient | None = field(default=None, repr=False)

    def client(self, subject: str | None = None, roles: Iterable[str] = ()) -> Client:
        """What commands talk to: the server at ``--url`` if set (acting as its token's
        subject and role), else the database here, acting as ``subject`` (default: the OS
        user) holding ``roles``. Naming someone else, or roles, is refused over REST: the
        server decides who the token is."""
        roles = list(roles)
        if self.url:
            if subject or roles:
                raise ParamsError(
                    [
                        "--as and --role act on the database only; through a server "
                        "(LOCKGATE_URL) you act as the subject and role of LOCKGATE_TOKEN"
                    ]
                )
            if self._remote is None:
                self._remote = RestClient(self.url, self.token)
            return self._remote
        return self.app().acting(subject or whoami(), roles)

    def tokens(self, *, migrate: bool = False) -> TokensClient:
        """The server's tokens when both ``--url`` and ``--token`` are set (an admin's
        token); else the database's, which is how the first token is made."""
        if self.url and self.token:
            return self.client().tokens
        return self.app(migrate=migrate).acting(whoami()).tokens

    def sessions(self) -> SessionsClient:
        """The server's console sessions when both ``--url`` and ``--token`` are set (an
        admin's token); else the database's."""
        if self.url and self.token:
            return self.client().sessions
        return self.app().acting(whoami()).sessions

    def app(self, *, migrate: bool = False) -> App:
        """The App on the configured database (upgrading its schema when asked)."""
        if self._app is None:
            # Only commands that set a database up may create one: elsewhere a missing
            # SQLite file is an error that names it, not a new empty database.
            self._app = App(self.settings, create_database=migrate)
        if migrate:
            self._app.migrate()
        return self._app

    def close(self) -> None:
        """Close the App (and the REST client) if opened."""
        if self._remote is not None:
            self._remote.close()
        if self._app is not None:
            self._app.close()
            self._app = None


def state_of(ctx: typer.Context) -> CliState:
    """The CLI state the root command set up."""
    state: CliState = ctx.obj
    return state


def pipelines_from(paths: list[str], examples: bool, settings: Settings) -> list[Pipeline]:
    """Pipelines from ``--pipelines`` paths and, with ``--examples``, the bundled ones."""
    return definitions_from(paths, examples, settings)[0]


def definitions_from(
    paths: list[str], examples: bool, settings: Settings
) -> tuple[list[Pipeline], list[Channel]]:
    """Pipelines and channels from ``--pipelines`` paths and, with ``--examples``, the
    bundled ones."""
    targets = list(paths) + ([EXAMPLES_MODULE] if examples else [])
    return load_definitions(targets, secret_names=settings.secrets.__contains__)


def whoami() -> str:
    """The OS user, recorded as who requested or cancelled a run from the CLI."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


class BackgroundWorker:
    """A worker on its own event loop in a thread, for commands that also follow a run."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="lockgate-worker", daemon=True)

    def _main(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            worker = self._app.worker()
            await worker.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await worker.stop()

        asyncio.run(body())

    def __enter__(self) -> BackgroundWorker:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)


def parse_params(
    pairs: list[str],
    params_file: Path | None,
    schema: Mapping[str, Any] | None = None,
    *,
    typed: bool = False,
) -> dict[str, Any]:
    """``key=value`` pairs over a JSON file; ``key:=<json>`` is always JSON.

    ``typed`` reads a value by its param's declared type in ``schema`` (the pipeline's
    params schema): a string param keeps the text as typed (``version=1.0``, a commit SHA
    of digits); JSON is parsed for number, integer, boolean, array and object params only,
    and not at all for a pipeline without a schema. Otherwise a value is parsed as JSON
    when it is JSON.
    """
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
        explicit = key.endswith(":")
        key = key.removesuffix(":")
        if not sep or not key:
            problems.append(f"{pair!r}: expected key=value (or key:=<json>)")
            continue
        if explicit:
            try:
                params[key] = json.loads(raw)
            except ValueError as exc:
                problems.append(f"{pair!r}: not JSON after ':=' ({exc})")
            continue
        if typed and declared_type(schema, key) not in JSON_TYPES:
            params[key] = raw  # text as typed
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    if problems:
        raise ParamsError(problems)
    return params


#: Declared param types whose ``-p`` values are read as JSON.
JSON_TYPES = frozenset({"number", "integer", "boolean", "array", "object"})


def declared_type(schema: Mapping[str, Any] | None, key: str) -> str | None:
    """The JSON type param ``key`` is declared with: ``string`` if it may be text at all;
    ``None`` when it is not declared (or there is no schema)."""
    if not schema:
        return None
    prop = (schema.get("properties") or {}).get(key)
    if not isinstance(prop, Mapping):
        return None
    types: set[str] = set()
    for option in [prop, *prop.get("anyOf", []), *prop.get("oneOf", [])]:
        kind = option.get("type")
        types.update(kind if isinstance(kind, list) else [kind] if kind else [])
        if "$ref" in option or "properties" in option:
            types.add("object")
        for value in option.get("enum", []) or []:
            types.add("string" if isinstance(value, str) else "number")
    types.discard("null")
    if "string" in types or not types:
        return "string" if types else None
    return sorted(types)[0]
