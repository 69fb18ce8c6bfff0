"""Typed settings; the only place (with the CLI) that reads the environment."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, ValidationError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lockgate.errors import SettingsError

DEFAULT_DATABASE_URL = "sqlite:///lockgate.db"


#: Words of a key's name that say its value is a credential, wherever they stand
#: (``access_token``, ``client_secret``, ``DB_PASSWORD``, ``Authorization``, ``sig``)...
CREDENTIAL_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "token",
        "secret",
        "credential",
        "credentials",
        "authorization",
        "signature",
        "sig",
    }
)
#: ...and words that do when they end it (``apiKey``, ``private_key``, ``basic_auth``; not
#: ``AWS_ACCESS_KEY_ID`` or ``SSH_AUTH_SOCK``).
CREDENTIAL_ENDINGS = frozenset({"key", "auth"})
#: The words of a name: ``apiKey`` -> api, key; ``AWS_SECRET`` -> aws, secret.
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def credential_key(name: str) -> bool:
    """Whether a key's name says its value is a credential."""
    words = [word.lower() for word in _WORDS.findall(name)]
    return bool(words) and (
        words[-1] in CREDENTIAL_ENDINGS or any(word in CREDENTIAL_WORDS for word in words)
    )


def absolute_database_url(url: str, cwd: Path) -> str:
    """``url`` with a relative SQLite path made absolute against ``cwd``, so that every
    message names the file in use (and a command run elsewhere cannot mistake it)."""
    prefix, sep, rest = url.partition(":///")
    if not sep or not prefix.startswith("sqlite"):
        return url
    path, q, query = rest.partition("?")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    return f"{prefix}:///{(cwd / path).resolve()}{q}{query}"


def credential_keys(url: str) -> list[str]:
    """The keys of ``url``'s query that look like they carry a credential (``?password=``,
    ``?access_token=``, ``?apikey=``, ``?sig=``...)."""
    query = url.partition("?")[2].partition("#")[0]
    keys = [part.partition("=")[0] for part in query.split("&") if part]
    return [k for k in keys if credential_key(k)]


def redacted(url: str, *, user_is_secret: bool = False) -> str:
    """``url`` without its password or the values of credential-like query keys, for
    messages, banners and what viewers read. With ``user_is_secret`` a user part without a
    password is taken for a token (git URLs such as ``https://TOKEN@host/repo``) and hidden
    too."""
    hidden = set(credential_keys(url))
    if hidden:
        base, _, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        parts = [
            f"{key}=***" if (key := part.partition("=")[0]) in hidden else part
            for part in query.split("&")
        ]
        url = f"{base}?{'&'.join(parts)}{hash_}{fragment}"
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else ("***" if user_is_secret else user)
    return f"{scheme}://{shown}@{rest[len(userinfo) + 1 :]}"


SECRET_PREFIX = "LOCKGATE_SECRET_"  # noqa: S105 - a variable name prefix, not a secret


def load_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Secrets from ``LOCKGATE_SECRET_<NAME>`` variables and the files in
    ``LOCKGATE_SECRETS_DIR`` (one file per secret, named after it)."""
    found: dict[str, str] = {}
    directory = env.get("LOCKGATE_SECRETS_DIR")
    if directory:
        for path in sorted(Path(directory).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                found[path.name] = path.read_text(encoding="utf-8").rstrip("\r\n")
    for key, value in env.items():
        if key.startswith(SECRET_PREFIX) and len(key) > len(SECRET_PREFIX):
            found[key[len(SECRET_PREFIX) :]] = value
    return found


@dataclass(frozen=True)
class Settings:
    """How one lockgate process connects and behaves."""

    database_url: str = DEFAULT_DATABASE_URL
    #: Mirror each step's log to ``<log_dir>/<run_id>/<step>.log`` when set.
    log_dir: Path | None = None
    #: How long a claimed run stays owned without a heartbeat.
    lease_seconds: float = 30.0
    #: Fallback poll for new work when no wake-up hint arrives.
    poll_interval: float = 0.5
    #: How often a worker looks for cancel requests on the runs it holds.
    cancel_poll_interval: float = 0.25
    #: Runs one worker executes at once.
    concurrency: int = 200
    #: Seconds a stopping worker waits for in-flight runs before releasing them.
    shutdown_grace: float = 10.0
    #: ``FULL`` keeps every committed checkpoint across a power loss.
    sqlite_synchronous: str = "FULL"
    #: Values masked as ``***`` in step logs and errors.
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: Hosts or networks (CIDR) the ``api`` step may reach although they are private,
    #: loopback or link-local; everything else of that kind is refused (SSRF guard).
    api_allow: tuple[str, ...] = ()
    #: A webhook delivery left RECEIVED or PROCESSING this long (a crash) is processed again;
    #: a FAILED one waits this long times its attempts before the next.
    delivery_retry_after: float = 30.0
    #: How often the server's delivery routine looks for deliveries to retry.
    delivery_retry_interval: float = 10.0
    #: Succeeded runs are kept this many days after they finished (0: for ever)...
    retain_succeeded_days: float = 30.0
    #: ...failed, rolled-back and cancelled ones this many (0: for ever)...
    retain_failed_days: float = 90.0
    #: ...and the newest this many runs of each pipeline always.
    retain_last: int = 100
    #: How often ``lockgate server`` prunes, and how many runs go per transaction.
    prune_interval: float = 3600.0
    prune_batch: int = 300
    #: The most of the database's time the server's retention takes: after a batch that
    #: took t seconds, retention pauses t * (1 / share - 1). ``None``: 0.01 on SQLite, whose
    #: deletes hold the one writer, and 0.05 on PostgreSQL, whose deletes go beside it.
    prune_share: float | None = None
    #: Deliveries (webhook, tick and poll firings) are kept this many days...
    delivery_retention_days: float = 30.0
    #: ...and at most this many per trigger, schedule or poller.
    delivery_retention_count: int = 1000
    #: A webhook delivery's identity (its signed body or signed id) is remembered this many
    #: days, whatever delivery retention keeps: the same one again is a replay.
    webhook_replay_days: float = 90.0
    #: A queue message whose body and headers together are larger than this is REJECTED
    #: (to the dead letters) without being parsed.
    queue_max_message_bytes: int = 1024 * 1024
    #: Names and globs of the worker's environment variables every ``shell`` step gets
    #: (``KUBECONFIG,AWS_*,HTTPS_PROXY``), besides PATH, HOME, LANG, LC_ALL, TZ and TMPDIR;
    #: ``LOCKGATE_*`` never passes.
    shell_env: tuple[str, ...] = ()
    #: Module prefixes ``python`` steps may call besides the pipeline's own modules.
    python_allow: tuple[str, ...] = ()
    #: Where each run gets a directory of its own (``${run.workspace}``); a templated
    #: ``cwd`` of a shell step must stay inside it.
    workspace_dir: Path = Path("lockgate-work")
    #: What one step may log per execution (lines, bytes); past it, a marker, then nothing.
    log_max_lines: int = 100_000
    log_max_bytes: int = 16 * 1024 * 1024
    #: Good webhook deliveries per second per trigger, and the burst above it.
    webhook_rate: float = 20.0
    webhook_burst: int = 100
    #: Failed webhook attempts (unknown trigger, bad signature) per second per sending
    #: address, and the burst: counted apart from good deliveries.
    webhook_failure_rate: float = 1.0
    webhook_failure_burst: int = 30
    #: Proxies whose X-Forwarded-For / -Proto headers are believed (addresses or
    #: networks); by default none, so a client cannot claim another address.
    forwarded_allow_ips: tuple[str, ...] = ()
    #: Serve the OpenAPI document and its pages (``/openapi.json``, ``/docs``) to anyone.
    api_docs: bool = True
    #: How long a web console sign-in lasts.
    console_session_seconds: float = 12 * 3600.0
    #: A console session unused for this long ends (the sign-in lasts at most
    #: ``console_session_seconds`` however busy it is).
    console_idle_seconds: float = 3600.0
    #: Sign-in attempts (a token posted, a link used) per minute per address, and the
    #: burst: past them, 429 until the budget refills.
    console_signin_per_minute: float = 10.0
    #: Send the console's cookie with ``Secure`` always (behind a TLS proxy whose headers
    #: are not believed); by default only when the request came over https.
    console_secure_cookie: bool = False
    #: How long a one-time sign-in link (``lockgate console-link``) can be used.
    console_link_seconds: float = 15 * 60.0
    #: This worker's stable identity (default: the host and a hash of the database URL).
    #: A restarted worker with the same identity takes its earlier runs back at once.
    worker_name: str | None = None

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, config: Path | None = None) -> Settings:
        """Settings from ``LOCKGATE_*`` environment variables over a TOML settings file
        (``config``; its keys are the field names) over the defaults. Every bad value is
        one line of the :class:`SettingsError`, naming the variable or the file's key."""
        return cls.resolve(env, config)[0]

    @classmethod
    def resolve(
        cls, env: Mapping[str, str] | None = None, config: Path | None = None
    ) -> tuple[Settings, dict[str, str]]:
        """:meth:`from_env`, and where each setting came from (``default``, the variable's
        name, or the file's path)."""
        env = os.environ if env is None else env
        if config is not None and not config.is_file():
            raise SettingsError(f"{config}: no such settings file")
        read = _reader(config)
        given = {
            name: env[_ENV_PREFIX + name.upper()]
            for name in read.model_fields
            if env.get(_ENV_PREFIX + name.upper(), "") != ""
        }
        try:
            values = read(**given).model_dump()
        except ValidationError as exc:
            raise SettingsError(_problems(exc, env, config)) from None
        except (OSError, ValueError) as exc:  # an unreadable file, or TOML that is not
            raise SettingsError(f"{config}: {exc}") from None
        values["secrets"] = load_secrets(env)
        in_file = set(_toml(config)) if config is not None else set()
        sources = {}
        for name in values:
            variable = _ENV_PREFIX + name.upper()
            if name == "secrets":
                sources[name] = "LOCKGATE_SECRET_*, LOCKGATE_SECRETS_DIR"
            elif env.get(variable, "") != "":
                sources[name] = variable
            elif name in in_file:
                sources[name] = str(config)
            else:
                sources[name] = "default"
        return cls(**values), sources


_ENV_PREFIX = "LOCKGATE_"
#: Settings read from lists: comma-separated in a variable, a list in the file.
_LISTS = ("api_allow", "python_allow", "forwarded_allow_ips", "shell_env")


def _split(value: Any) -> Any:
    """A comma-separated variable as its items (a TOML list passes as it is)."""
    if isinstance(value, str):
        return tuple(x.strip() for x in value.split(",") if x.strip())
    return value


@functools.lru_cache(maxsize=8)
def _reader(config: Path | None) -> Any:
    """A pydantic-settings model of every setting but the secrets: the values given (the
    ``LOCKGATE_*`` variables') over the TOML file over the defaults."""
    hints = typing.get_type_hints(Settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name == "secrets":
            continue
        kind = hints[f.name]
        if f.name in _LISTS:
            kind = Annotated[kind, NoDecode, BeforeValidator(_split)]
        fields[f.name] = (kind, f.default)

    class Sources(BaseSettings):
        model_config = SettingsConfigDict(extra="forbid", toml_file=config, frozen=True)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            found: tuple[PydanticBaseSettingsSource, ...] = (init_settings,)
            if config is not None:
                found += (TomlConfigSettingsSource(settings_cls),)
            return found

    return pydantic.create_model("LockgateSettings", __base__=Sources, **fields)


def _names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings) if f.name != "secrets"]


def _toml(config: Path) -> dict[str, Any]:
    with config.open("rb") as fh:
        return tomllib.load(fh)


def _problems(exc: ValidationError, env: Mapping[str, str], config: Path | None) -> str:
    """One line per bad value, naming where it came from."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        variable = _ENV_PREFIX + name.upper()
        if error["type"] == "extra_forbidden":
            suggestion = difflib.get_close_matches(name, _names(), n=1)
            hint = f" (did you mean {suggestion[0]!r}?)" if suggestion else ""
            lines.append(f"{config}: {name!r} is not a setting{hint}")
            continue
        if env.get(variable, "") != "":
            lines.append(f"{variable}={env[variable]!r}: {error['msg']}")
        else:
            lines.append(f"{config}: {name}: {error['msg']}")
    return "; ".join(lines)
