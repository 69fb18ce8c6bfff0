"""Git pollers: ``git ls-remote`` on an interval; a new commit on a tracked ref starts a run.

The first poll records a baseline and starts nothing. Each new (ref, commit) starts its run
once (idempotency key ``poll:<id>:<ref>:<commit>``), whichever server polls.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import fnmatch
import os
import re
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import Field

from lockgate.core.periodic import every
from lockgate.engine.launcher import RunStarter
from lockgate.errors import LockgateError, ParamsError
from lockgate.records import PollerRecord
from lockgate.settings import credential_keys, redacted
from lockgate.store import Store
from lockgate.store.deliveries import Deliver
from lockgate.store.pollers import PollerStore
from lockgate.triggers.event import TriggerEvent, split_ref
from lockgate.triggers.firing import fire, plan_run
from lockgate.triggers.managed import Managed
from lockgate.triggers.spec import Spec

LS_REMOTE_TIMEOUT = 30.0
#: What a secret's name looks like (``LOCKGATE_SECRET_<NAME>``).
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
CHECK_INTERVAL = 1.0
#: Transports git may use here (no ``ext::`` commands).
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


def ls_remote(
    repository: str, timeout: float = LS_REMOTE_TIMEOUT, credentials: str | None = None
) -> dict[str, str]:
    """Ref -> commit of a repository, by ``git ls-remote`` (no prompts, no shell).
    ``credentials`` (``user:password``) go to an http(s) repository as basic authentication,
    in git's environment (never on its command line or in a file)."""
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ},
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        "GIT_ASKPASS": "true",
    }
    if credentials is not None:
        basic = base64.b64encode(credentials.encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--", repository],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LockgateError(f"git ls-remote timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise LockgateError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise LockgateError(f"git ls-remote failed: {done.stderr.strip()[:300]}")
    refs = {}
    for line in done.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref and not ref.endswith("^{}"):
            refs[ref] = sha
    return refs


def _check(
    repository: str, refs: Sequence[str], interval_seconds: float, credentials: str | None = None
) -> None:
    """Refuse a poller's settings with every problem listed."""
    problems = []
    parts = urlsplit(repository)
    if parts.password or (parts.scheme in ("http", "https") and parts.username):
        problems.append(
            "repository: no user or password in an http(s) URL: name a secret holding "
            "user:password in credentials instead"
        )
    if keys := credential_keys(repository):
        problems.append(
            f"repository: no credentials in the query ({', '.join(keys)}): name a secret "
            "holding user:password in credentials instead"
        )
    if credentials is not None and not SECRET_NAME.fullmatch(credentials):
        problems.append("credentials: the name of a configured secret (letters, digits, _)")
    if not repository or repository.startswith("-") or any(c in repository for c in "\n\0"):
        problems.append("repository: a git URL or path (not starting with '-')")
    if "::" in repository.split("/")[0]:
        problems.append("repository: transport helpers (x::...) are not allowed")
    if interval_seconds < 5:
        problems.append("interval_seconds: at least 5")
    if not refs:
        problems.append("refs: at least one glob, such as refs/heads/main")
    if problems:
        raise ParamsError(problems)


class PollerSpec(Spec):
    """A git repository to poll: each new commit on a tracked ref starts a run."""

    repository: str = Field(
        max_length=2000,
        title="Repository",
        description="A git URL or path to poll.",
        examples=["https://git.example.com/app.git"],
    )
    refs: list[str] = Field(
        default_factory=lambda: ["refs/heads/*"],
        max_length=50,
        title="Refs",
        description="Refs to track, globs.",
        json_schema_extra={"default": ["refs/heads/*"]},
    )
    interval_seconds: float = Field(
        60.0, title="Every (seconds)", description="Poll every this many seconds."
    )
    credentials: str | None = Field(
        None,
        max_length=200,
        title="Credentials",
        description="The name of a secret (LOCKGATE_SECRET_<NAME>) holding user:password; "
        'never part of the URL ("" drops them).',
    )

    arguments = ("pipeline", "repository")
    flags = {"refs": "--ref", "interval_seconds": "--every"}


class Pollers(Managed[PollerRecord, PollerSpec]):
    """Creates pollers and runs their polls."""

    kind = "poller"
    spec = PollerSpec
    rows: PollerStore

    def __init__(
        self, store: Store, starter: RunStarter, secrets: Mapping[str, str] | None = None
    ) -> None:
        #: The configured secrets a poller's ``credentials`` may name.
        self._secrets = secrets or {}
        self._db = store
        self._starter = starter
        self.rows = PollerStore(store)
        self.log = structlog.get_logger("lockgate.poller")

    def _create(self, spec: PollerSpec) -> PollerRecord:
        """A poller; refused with every problem listed. ``credentials`` names the secret
        sent to an http(s) repository."""
        _check(spec.repository, spec.refs, spec.interval_seconds, spec.credentials)
        shown = {"repository": redacted(spec.repository, user_is_secret=True)}
        row = {
            **spec.model_dump(),
            "id": secrets.token_hex(8),
            "seen": None,
            "next_poll_at": time.time(),
            "last_error": None,
            "enabled": True,
        }
        return self.rows.create(row, self.audit("create", shown))

    def _update(self, poller_id: str, changes: dict[str, Any]) -> PollerRecord:
        """Change a poller (``credentials=""`` drops them); every problem listed. A new
        repository starts over with a baseline poll (its commits start nothing)."""
        old = self.get(poller_id)
        merged = {**dataclasses.asdict(old), **changes}
        credentials = changes.get("credentials", old.credentials) or None
        _check(merged["repository"], merged["refs"], merged["interval_seconds"], credentials)
        fields = sorted(changes)
        values: dict[str, Any] = dict(changes)
        if changes.get("credentials") == "":
            values["credentials"] = None
        repository = changes.get("repository")
        if repository is not None and repository != old.repository:
            values.update(seen=None, last_error=None, next_poll_at=time.time())
        if not values:
            return old
        return self.rows.update(poller_id, values, self.audit("update", {"fields": fields}))

    def poll_once(self, now: float | None = None) -> int:
        """Poll every due poller; the number of runs started."""
        now = time.time() if now is None else now
        started = 0
        for poller in self.rows.claim_due(now):
            try:
                secret = None
                if poller.credentials is not None:
                    secret = self._secrets.get(poller.credentials)
                    if secret is None:
                        raise LockgateError(f"credentials: no secret {poller.credentials!r} here")
                current = ls_remote(poller.repository, credentials=secret)
            except LockgateError as exc:
                self.rows.record(poller.id, None, exc.message)
                self.log.warning("poll failed", poller=poller.id, error=exc.message)
                continue
            tracked = {
                r: sha
                for r, sha in current.items()
                if any(fnmatch.fnmatchcase(r, g) for g in poller.refs)
            }
            if poller.seen is not None:
                for ref, sha in sorted(tracked.items()):
                    if poller.seen.get(ref) != sha:
                        started += self._fire(poller, ref, sha)
            self.rows.record(poller.id, tracked, None)
        return started

    def _fire(self, poller: PollerRecord, ref: str, sha: str) -> int:
        branch, tag = split_ref(ref)
        event = TriggerEvent(
            "git",
            "tag" if tag else "push",
            poller.repository,
            ref,
            branch,
            tag,
            sha,
            None,
            f"{ref}@{sha}",
        )
        plan = plan_run(
            self._starter,
            pipeline=poller.pipeline,
            namespace=poller.namespace,
            params=poller.params,
            context={"event": event.to_dict()},
            requested_by=f"poller:{poller.id}",
            idempotency_key=f"poll:{poller.id}:{ref}:{sha}",
        )
        op = Deliver(poller.id, f"{ref}@{sha}", event.to_dict(), None, *plan, source="poller")
        return int(fire(self._db, self._starter, op))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        await every(stop, CHECK_INTERVAL, self.poll_once, "poll pass")
