"""``shell``: run a command as an argv list, never through a shell.

Values reach the command only as argv elements or environment variables. stdout and stderr
stream into the step's log line by line; a non-zero exit fails the step; a cancel or timeout
kills the command's whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import json
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from lockgate.core.context import StepContext
from lockgate.core.masking import Masker
from lockgate.core.templates import TemplateError
from lockgate.errors import StepError
from lockgate.settings import credential_key
from lockgate.steps.base import KindConfig, StepKind

#: Output kept per stream for ``${steps.NAME.stdout}`` (the log has everything).
TAIL_BYTES = 64 * 1024
#: Variables passed through from the worker; everything else comes from ``env``.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
#: A longer output line is cut here (with a marker) in the step's log.
MAX_LINE_BYTES = 64 * 1024
#: Seconds between SIGTERM and SIGKILL when a command is stopped.
KILL_GRACE = 2.0


class ShellConfig(KindConfig):
    """A command and where it runs."""

    argv: list[str] = Field(min_length=1, description="The program and its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    inherit_env: list[str] = Field(
        default_factory=list,
        description="Names and globs (AWS_*) of the worker's environment variables this step "
        "gets, besides LOCKGATE_SHELL_ENV's; LOCKGATE_* never passes. Values of those named "
        "like credentials (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY) are masked in the step's log.",
    )
    cwd: str | None = Field(
        default=None,
        description="Working directory; one with placeholders must stay inside the run's "
        "workspace (${run.workspace}, relative paths start there).",
    )
    allow_option_values: bool = Field(
        default=False,
        description="Let a param or payload value that starts with '-' open an argv element "
        "(it could be read as an option).",
    )

    @field_validator("argv", mode="before")
    @classmethod
    def _argv_text(cls, value: Any) -> Any:
        return [_text(v) for v in value] if isinstance(value, list) else value

    @field_validator("env", mode="before")
    @classmethod
    def _env_text(cls, value: Any) -> Any:
        return {k: _text(v) for k, v in value.items()} if isinstance(value, dict) else value


def _text(value: Any) -> Any:
    """Numbers and booleans become their JSON text (``true``, ``3``); strings stay."""
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return value


def run_workspace(root: Path, run_id: str) -> Path:
    """The directory of one run's files, under ``root`` (a run id is one plain name)."""
    return _resolved(root) / run_id


@functools.lru_cache(maxsize=16)
def _resolved(root: Path) -> Path:
    """``root`` made absolute, once per process rather than once per step."""
    return root.resolve()


#: Placeholder roots whose values the pipeline's author wrote or computed: trusted.
_TRUSTED_ROOTS = ("steps.", "secrets.", "run.")


def _untrusted_head(template: Any) -> bool:
    """Whether ``template`` opens with a placeholder of an outside value (a param, a
    webhook's payload or event, a channel's content)."""
    if not isinstance(template, str) or not template.startswith("${"):
        return False
    name = template[2:].lstrip()
    return not name.startswith(_TRUSTED_ROOTS)


class ShellKind(StepKind):
    """Run a local command."""

    name = "shell"
    config = ShellConfig

    def render_config(
        self, raw_config: Mapping[str, Any], scope: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Render, then refuse what could be injected: an outside value opening an argv
        element with ``-`` (an option), a templated ``cwd`` outside the run's workspace."""
        rendered = super().render_config(raw_config, scope)
        argv = raw_config.get("argv")
        if isinstance(argv, list) and not raw_config.get("allow_option_values"):
            for i, (template, value) in enumerate(zip(argv, rendered["argv"], strict=True)):
                if _untrusted_head(template) and str(value).startswith("-"):
                    raise TemplateError(
                        f"argv[{i}] {template!r} starts with '-' ({str(value)[:40]!r}): it "
                        "could be read as an option; refused (allow_option_values: true "
                        "allows it)"
                    )
        cwd = raw_config.get("cwd")
        if isinstance(cwd, str) and "${" in cwd:
            rendered["cwd"] = str(_confined(Path(scope["run"]["workspace"]), rendered["cwd"]))
        return rendered

    async def execute(self, ctx: StepContext, config: ShellConfig, value: Any) -> Any:
        """Run the command; its exit code and the tails of its output are the step's output."""
        if ctx.noop:
            ctx.log.info("would run %s", config.argv)
            return {"exit_code": None, "stdout": "", "stderr": "", "noop": True}
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        inherited = host_env(os.environ, [*ctx.settings.shell_env, *config.inherit_env])
        env.update(inherited)
        if ctx.traceparent is not None:  # the command's own spans join the run's trace
            env["TRACEPARENT"] = ctx.traceparent
        env.update(config.env)
        # A credential taken from the host is no configured secret: masked here.
        hidden = [v for k, v in inherited.items() if credential_key(k) and len(v) >= 4]
        mask = Masker(hidden) if hidden else None
        ctx.log.info("running %s", config.argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *config.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=config.cwd,
                start_new_session=True,  # its own process group, so we can stop all of it
            )
        except OSError as exc:
            raise StepError(f"cannot start {config.argv[0]!r}: {exc.strerror or exc}") from exc
        tails = {"stdout": bytearray(), "stderr": bytearray()}
        try:
            await asyncio.gather(
                _pump(proc.stdout, "info", tails["stdout"], ctx, mask),
                _pump(proc.stderr, "warning", tails["stderr"], ctx, mask),
            )
            code = await proc.wait()
        except BaseException:
            await _stop_group(proc)
            raise
        out = {k: v.decode(errors="replace").rstrip("\r\n") for k, v in tails.items()}
        if mask is not None:
            out = {k: mask(v) for k, v in out.items()}
        if code != 0:
            raise StepError(f"command {config.argv[0]!r} exited with status {code}")
        return {"exit_code": code, **out}


def host_env(environ: Mapping[str, str], patterns: Sequence[str]) -> dict[str, str]:
    """The variables of ``environ`` that ``patterns`` (names and globs) name, never a
    ``LOCKGATE_*`` one (secrets and settings stay with lockgate)."""
    if not patterns:
        return {}
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith("LOCKGATE_")
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


def _confined(workspace: Path, cwd: Any) -> Path:
    """``cwd`` resolved from the run's workspace, which it may not leave."""
    target = (workspace / str(cwd)).resolve()
    if not target.is_relative_to(workspace):
        raise TemplateError(f"cwd {str(cwd)!r} leaves the run's workspace {workspace}")
    target.mkdir(parents=True, exist_ok=True)
    return target


async def _pump(
    stream: asyncio.StreamReader | None,
    level: str,
    tail: bytearray,
    ctx: StepContext,
    mask: Masker | None = None,
) -> None:
    """Log ``stream`` line by line (through ``mask``, if any); a line longer than
    ``MAX_LINE_BYTES`` is cut there, with a marker (a command printing a huge line does
    not fail its step)."""
    if stream is None:
        return
    line = bytearray()
    cut = False
    while chunk := await stream.read(65536):
        tail.extend(chunk)
        if len(tail) > TAIL_BYTES:
            del tail[: len(tail) - TAIL_BYTES]
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            if not cut:
                line.extend(piece)
            _emit(ctx, level, line, cut, mask)
            line, cut = bytearray(), False
        if not cut:
            line.extend(rest)
            if len(line) > MAX_LINE_BYTES:
                del line[MAX_LINE_BYTES:]
                cut = True
    if line or cut:
        _emit(ctx, level, line, cut, mask)


def _emit(ctx: StepContext, level: str, line: bytearray, cut: bool, mask: Masker | None) -> None:
    text = bytes(line[:MAX_LINE_BYTES]).decode(errors="replace").rstrip("\r")
    if mask is not None:
        text = mask(text)
    if cut or len(line) > MAX_LINE_BYTES:
        text += f" [line cut at {MAX_LINE_BYTES} bytes]"
    ctx.log.log(level, text)


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, then SIGKILL what is left."""
    if proc.returncode is not None:
        return
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), wait)
            return
        except TimeoutError:
            continue
