"""Helpers for tests and benchmarks: a throwaway PostgreSQL server on loopback.

Used by lockgate's own test suite and ``bench/`` scripts, and shipped so that projects
built on lockgate can test against a real database the same way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg

PG_BIN = Path(os.environ.get("LOCKGATE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """Start ``initdb`` + ``postgres`` in a temp dir on a free loopback port; stop and delete.

    As root the server runs as the ``postgres`` OS user (``initdb`` refuses root).
    """

    def __init__(
        self,
        *,
        fsync: bool = True,
        bin_dir: Path = PG_BIN,
        listen: Sequence[str] = (),
        trusted: Sequence[str] = (),
    ) -> None:
        """``listen``: addresses to listen on besides 127.0.0.1; ``trusted``: networks
        (CIDR) whose clients connect without a password, besides loopback."""
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.listen = tuple(listen)
        self.trusted = tuple(trusted)
        self.port = 0
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*prefix, *args]

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; returns self."""
        if not (self.bin_dir / "initdb").exists():
            raise RuntimeError(f"PostgreSQL binaries not found in {self.bin_dir}")
        self.dir = Path(tempfile.mkdtemp(prefix="lockgate-pg-"))
        data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            **run,  # type: ignore[call-overload]
        )
        if self.trusted:
            with open(data / "pg_hba.conf", "a") as hba:
                for network in self.trusted:
                    hba.write(f"host all all {network} trust\n")
        self.port = free_port()
        self._pg_ctl("start")
        return self

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as if it crashed, recovering from its WAL on
        start) and start it again on the same port."""
        self._pg_ctl("restart", "-m", mode)

    def _pg_ctl(self, action: str, *more: str) -> None:
        assert self.dir is not None
        listen = ",".join(("127.0.0.1", *self.listen))
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={listen} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200 "
            f"-c synchronous_commit={'on' if self.fsync else 'off'}"
        )
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-o",
                options,
                "-l",
                str(self.dir / "server.log"),
                "-w",
                "-t",
                "60",
                *more,
                action,
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (optionally cloned from ``template``); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self.dir is None:
            return
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
