"""What ``lockgate server`` prints at start: where it runs, and commands that work as
printed when pasted into a second shell."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from lockgate.channels.model import Channel
from lockgate.core.pipeline import Pipeline
from lockgate.settings import redacted


def sample_params(pipeline: Pipeline) -> list[str] | None:
    """``-p name=value`` for each required param, from its example (or its first allowed
    value); ``None`` when one has neither."""
    schema: dict[str, Any] = pipeline.describe().get("params") or {}
    properties = schema.get("properties", {})
    found = []
    for name in schema.get("required", []):
        prop = properties.get(name, {})
        if prop.get("examples"):
            value = prop["examples"][0]
        elif prop.get("enum"):
            value = prop["enum"][0]
        else:
            return None
        found.append(f"-p {shlex.quote(f'{name}={value}')}")
    return found


def _runnable(pipelines: Sequence[Pipeline]) -> tuple[Pipeline, list[str]] | None:
    """The first pipeline a newcomer can run to the end with example params: no approval
    to wait for, no channel deployment."""
    for p in pipelines:
        waits = any(s.config.get("kind") == "approval" for s in p.steps)
        params = sample_params(p)
        if params is not None and not waits and not p.name.startswith("channel/"):
            return p, params
    return None


def banner_lines(
    database_url: str,
    pipelines: Sequence[Pipeline],
    channels: Sequence[Channel],
    listen: tuple[str, int] | None,
) -> list[str]:
    """The lines to print; commands are exact, to paste as they are."""
    shown = redacted(database_url)
    lines = [f"database {shown}"]
    if listen is not None:
        host, port = listen
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming it, not binding it
            host = "127.0.0.1"
        base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        lines.append(f"API on {base}/api/v1 (OpenAPI: {base}/docs)")
        lines.append(f"Console on {base}/ (sign in with a token, or a link from the command below)")
    lines += ["", "In another shell:"]
    if shown == database_url:
        lines.append(f"  export LOCKGATE_DATABASE_URL={shlex.quote(database_url)}")
    else:
        lines.append("  export LOCKGATE_DATABASE_URL=...   # this server's, with its password")
    if listen is not None:
        lines += [
            f"  export LOCKGATE_URL={base}",
            '  export LOCKGATE_TOKEN=$(lockgate tokens create --name "${USER:-me}" --role admin)',
            "  lockgate console-link --role admin    # a one-time sign-in link for your browser",
        ]
    found = _runnable(pipelines)
    if found is not None:
        pipeline, params = found
        name = pipeline.name if pipeline.namespace == "default" else pipeline.key
        lines.append("  " + " ".join(["lockgate run", shlex.quote(name), *params, "--wait"]))
    elif pipelines:
        lines.append(f"  lockgate pipelines show {shlex.quote(pipelines[0].name)}")
    lines.append("  lockgate runs list")
    if channels:
        lines.append(f"  lockgate channels stages {shlex.quote(channels[0].name)}")
    return lines
