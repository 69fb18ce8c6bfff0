"""``shell``: run a command as an argv list, never through a shell.

Values reach the command only as argv elements or environment variables. stdout and stderr
stream into the step's log line by line; a non-zero exit fails the step; a cancel or timeout
kills the command's whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from pydantic import Field, field_validator

from lockgate.core.context import StepContext
from lockgate.errors import StepError
from lockgate.steps.base import KindConfig, StepKind

#: Output kept per stream for ``${steps.NAME.stdout}`` (the log has everything).
TAIL_BYTES = 64 * 1024
#: Variables passed through from the worker; everything else comes from ``env``.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
#: Seconds between SIGTERM and SIGKILL when a command is stopped.
KILL_GRACE = 2.0


class ShellConfig(KindConfig):
    """A command and where it runs."""

    argv: list[str] = Field(min_length=1, description="The program and its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(default=None, description="Working directory.")

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


class ShellKind(StepKind):
    """Run a local command."""

    name = "shell"
    config = ShellConfig

    async def execute(self, ctx: StepContext, config: ShellConfig, value: Any) -> Any:
        """Run the command; its exit code and the tails of its output are the step's output."""
        if ctx.noop:
            ctx.log.info("would run %s", config.argv)
            return {"exit_code": None, "stdout": "", "stderr": "", "noop": True}
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        env.update(config.env)
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
                _pump(proc.stdout, "info", tails["stdout"], ctx),
                _pump(proc.stderr, "warning", tails["stderr"], ctx),
            )
            code = await proc.wait()
        except BaseException:
            await _stop_group(proc)
            raise
        out = {k: v.decode(errors="replace").rstrip("\r\n") for k, v in tails.items()}
        if code != 0:
            raise StepError(f"command {config.argv[0]!r} exited with status {code}")
        return {"exit_code": code, **out}


async def _pump(
    stream: asyncio.StreamReader | None, level: str, tail: bytearray, ctx: StepContext
) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        ctx.log.log(level, line.decode(errors="replace").rstrip("\r\n"))
        tail.extend(line)
        if len(tail) > TAIL_BYTES:
            del tail[: len(tail) - TAIL_BYTES]


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
