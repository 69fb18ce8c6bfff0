"""``lockgate server`` as a real subprocess for the acceptance tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from lockgate.testing import free_port


@contextlib.contextmanager
def lockgate_server(
    env: dict[str, str], *args: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``lockgate server ARGS`` on a free port, once it answers ``/healthz``; yields its URL
    and process. Stopped with SIGTERM (it must exit 0) unless the test ended it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "server", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "server exited"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
