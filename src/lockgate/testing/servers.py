"""Throwaway PostgreSQL, Redis and RabbitMQ servers on loopback, for tests and benchmarks:
each on a temporary directory and a free port, stopped by pid (with what it started)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from lockgate.testing.waiting import free_port

PG_BIN = Path(os.environ.get("LOCKGATE_PG_BIN", "/usr/lib/postgresql/15/bin"))


class _Throwaway(ABC):
    """A server started by ``with`` (or :meth:`start`) and stopped, its files deleted, at
    the end."""

    @abstractmethod
    def start(self) -> Self:
        """Start it; ready for use when this returns."""

    @abstractmethod
    def stop(self) -> None:
        """Stop it (by pid) and delete its files."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PostgresServer(_Throwaway):
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
        import psycopg  # the postgres extra: only a PostgreSQL server needs it

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


def _wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not start in {timeout:g}s\n{tail}")
        time.sleep(0.1)


def _group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` is still running."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _answers(port: int, hello: bytes, expect: bytes) -> bool:
    """Whether a server on 127.0.0.1:``port`` answers ``hello`` with ``expect`` first."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(hello)
            return sock.recv(len(expect)) == expect
    except OSError:
        return False


class RedisServer(_Throwaway):
    """A throwaway ``redis-server`` on a free loopback port, in memory only; stopped by pid."""

    def __init__(self, binary: str = "redis-server") -> None:
        self.binary = binary
        self.port = 0
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING."""
        self.dir = Path(tempfile.mkdtemp(prefix="lockgate-redis-"))
        self.port = free_port()
        log = self.dir / "redis.log"
        command = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
            *("--save", "", "--appendonly", "no", "--logfile", str(log)),
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(lambda: _answers(self.port, b"PING\r\n", b"+PONG"), 30, "redis-server", log)
        return self

    def stop(self) -> None:
        """Stop the server (by its pid) and delete its files."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class RabbitMQServer(_Throwaway):
    """A throwaway RabbitMQ node on free loopback ports, in a temp dir, with its own epmd.

    As root the node runs as the ``rabbitmq`` OS user. Stopping ends the node's process
    group and its epmd (started here, on a port of its own), each by pid, and deletes the
    files.
    """

    def __init__(self, binary: str = "rabbitmq-server") -> None:
        self.binary = binary
        self.port = 0
        self.dir: Path | None = None
        self._epmd_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self.node = ""

    #: The user and password of the node (RabbitMQ's default ``guest``, on loopback only).
    user = password = "guest"  # noqa: S105 - the test node's well-known default

    @property
    def url(self) -> str:
        """The ``amqp://`` URL of this node, with the user's password."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/"

    @property
    def address(self) -> str:
        """The ``amqp://`` URL of this node naming the user, without the password (what a
        queue trigger takes, with the password in a secret)."""
        return f"amqp://{self.user}@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        assert self.dir is not None
        base = self.dir
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(base),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": str(base / "log" / "node.log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        }

    def start(self) -> RabbitMQServer:
        """Start the node and wait until it speaks AMQP (a few seconds)."""
        self.dir = Path(tempfile.mkdtemp(prefix="lockgate-rabbitmq-"))
        self.port, self._epmd_port = free_port(), free_port()
        self.node = f"lockgate{uuid.uuid4().hex[:8]}@localhost"
        (self.dir / "log").mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("loopback_users = none\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "rabbitmq", "rabbitmq")
            for path in self.dir.rglob("*"):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        # The node's own epmd, started here so that it ends by its pid (one the node started
        # itself would outlive it as a daemon).
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self._epmd_port), "-address", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: _listening(self._epmd_port), 10, "epmd", None)
        user = ["runuser", "-u", "rabbitmq", "--"] if os.geteuid() == 0 else []
        self._process = subprocess.Popen(
            [*user, self.binary],
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(
                lambda: _answers(self.port, b"AMQP\x00\x00\x09\x01", b"\x01"),
                60,
                "rabbitmq-server",
                self.dir / "log" / "node.log",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End the node's process group and its epmd, and delete its files."""
        if self._process is not None:
            group = self._process.pid  # its own session: the node and all it started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            # runuser returns at once; the node takes a few seconds to shut down.
            deadline = time.monotonic() + 30
            while _group_alive(group) and time.monotonic() < deadline:
                self._process.poll()  # reap runuser, so that only the node counts
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self._process.wait(10)
            self._process = None
        if self._epmd is not None:
            self._epmd.terminate()
            try:
                self._epmd.wait(10)
            except subprocess.TimeoutExpired:
                self._epmd.kill()
                self._epmd.wait(10)
            self._epmd = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
