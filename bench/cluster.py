"""Many hosts on one PostgreSQL: scale-out and host faults, on test hosts made of network
namespaces on this machine.

    python bench/cluster.py              # every scenario, full size (as root)
    python bench/cluster.py --short      # every scenario, small enough for CI
    python bench/cluster.py --scenario host-dies --hosts 2,4

Each test host is a Linux network namespace joined to the host side by a veth pair on a
bridge, with an address in 10.231.77.0/24, used only between these namespaces and the host.
PostgreSQL listens on the bridge's address (10.231.77.1); each test host runs `lockgate
worker` processes against it. Every namespace, link and bridge made here is removed on the
way out, also on failure and Ctrl-C (and left-overs of a killed earlier run at the start).

Scenarios (one JSON line each, per number of hosts):

- ``scale-out``: a backlog of runs of the 3-step ``quick`` pipeline, drained by 1, 2, 4 hosts.
- ``host-dies``: every lockgate process of host 1 is SIGKILLed mid-load; its runs move.
- ``cut-off``: host 1's link goes down for three lease times, then comes back; what it
  writes after losing its leases is refused by the fencing token.
- ``paused``: host 1's processes are stopped (SIGSTOP, as a VM freeze or a long pause would)
  for three lease times and go on (SIGCONT) with what they had in memory: every write they
  make for runs that moved meanwhile is refused by the fencing token.
- ``pg-restart``: ``pg_ctl restart -m immediate`` under load; workers reconnect.
- ``slow-db``: 20 ms more round trip between the hosts and PostgreSQL. This kernel has no
  ``netem`` qdisc, so the delay is a proxy on the bridge address that holds every chunk from
  the hosts for 20 ms before passing it on (replies pass at once).

Every step execution is recorded in a ledger before it runs, and the audit compares it with
the store's COMPLETED events as ``bench/chaos.py`` does. Keys: scenario, hosts, runs,
finished, lost, completed_step_reexecuted, non_idempotent_reexecuted, fenced_writes_refused,
steps_per_s, p50_ms, p99_ms (a step: one COMPLETED event of a run to the next, so the
commit is in it), raw_commits_per_s (the same PostgreSQL, one client per host, this run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from chaos import audit
from common import percentile, raw_commit_rate
from lockgate import App, Settings
from lockgate.errors import StoreError
from lockgate.specs.discover import load_pipelines
from lockgate.testing import PostgresServer, free_port

PIPELINES = str(Path(__file__).parent / "chaos_pipeline.py")
PREFIX = "lgc"
NET = "10.231.77"
BRIDGE = f"{PREFIX}-br"
SERVER_IP = f"{NET}.1"
LEASE = 2.0
SCENARIOS = ("scale-out", "host-dies", "cut-off", "paused", "pg-restart", "slow-db")


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


@contextmanager
def bridge() -> Iterator[None]:
    """The host side: a bridge with the server's address, for the whole run."""
    sweep()
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SERVER_IP}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        yield
    finally:
        sweep()


class TestHosts:
    """Network namespaces ``lgc-h1``..``lgc-hN`` on the bridge; removed on exit."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> TestHosts:
        try:
            for n in range(1, self.count + 1):
                ns, outer, inner = self.names(n)
                ip("netns", "add", ns)
                ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                ip("link", "set", inner, "netns", ns)
                ip("link", "set", outer, "master", BRIDGE)
                ip("link", "set", outer, "up")
                ip("-n", ns, "addr", "add", f"{NET}.{10 + n}/24", "dev", inner)
                ip("-n", ns, "link", "set", inner, "up")
                ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for n in range(1, self.count + 1):
            ns, outer, _ = self.names(n)
            ip("link", "del", outer, check=False)  # both ends, at once (a namespace's go later)
            ip("netns", "del", ns, check=False)

    @staticmethod
    def names(n: int) -> tuple[str, str, str]:
        """The namespace, and the host and namespace ends of its link."""
        return f"{PREFIX}-h{n}", f"{PREFIX}{n}h", f"{PREFIX}{n}n"

    def cut(self, n: int) -> None:
        """Take host ``n``'s link down: nothing passes either way."""
        ip("link", "set", self.names(n)[1], "down")

    def heal(self, n: int) -> None:
        ip("link", "set", self.names(n)[1], "up")

    def spawn(
        self, n: int, argv: list[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on host ``n`` (``ip netns exec`` execs it: the pid is its own)."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.names(n)[0], *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def sweep() -> None:
    """Remove every namespace and link of ours (left-overs of a killed run too)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-h"):
            ip("netns", "del", name, check=False)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PREFIX):
            ip("link", "del", name, check=False)


class DelayProxy:
    """TCP from the test hosts to PostgreSQL, each chunk from a host held ``delay`` seconds
    (in order, without limiting throughput); replies pass at once."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, SERVER_IP, self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connection(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            w.close()
            return
        await asyncio.gather(self._pump(r, uw, self.delay), self._pump(ur, w, 0.0))

    @staticmethod
    async def _pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, delay: float) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await held.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                w.write(chunk)
                await w.drain()

        sender = asyncio.ensure_future(forward())
        try:
            while chunk := await r.read(65536):
                held.put_nowait((time.monotonic() + delay, chunk))
        except OSError:
            pass
        held.put_nowait((0.0, b""))
        with suppress(OSError):
            await sender
        w.close()


class Load:
    """One scenario's database, runs and worker processes."""

    def __init__(
        self,
        server: PostgresServer,
        hosts: TestHosts,
        name: str,
        tmp: Path,
        *,
        port: int | None = None,
    ) -> None:
        self.server, self.hosts, self.tmp = server, hosts, tmp
        self.url = server.create_database(name.replace("-", "_"))
        db = self.url.rsplit("/", 1)[1]
        self.host_url = f"postgresql+psycopg://postgres@{SERVER_IP}:{port or server.port}/{db}"
        self.ledger = tmp / f"{name}.ledger"
        self.ledger.touch()
        self.app = App(Settings(database_url=self.url))
        self.app.migrate()
        self.app.register(*load_pipelines([PIPELINES]))
        self.procs: dict[int, list[subprocess.Popen[bytes]]] = {}
        self.logs: dict[int, list[Path]] = {}
        self.name = name
        self.ids: list[str] = []

    def queue(self, pipeline: str, runs: int) -> None:
        for i in range(runs):
            self.ids.append(self.app.start_run(pipeline, {"n": i, "fail": False}).id)

    def start(self, per_host: int, concurrency: int, fsync: bool) -> None:
        for n in range(1, self.hosts.count + 1):
            for k in range(per_host):
                log = self.tmp / f"{self.name}-h{n}-w{k}.log"
                env = {
                    **os.environ,
                    "LOCKGATE_DATABASE_URL": self.host_url,
                    "LOCKGATE_WORKER_NAME": f"h{n}-w{k}",
                    "LOCKGATE_LEDGER": str(self.ledger),
                    "LOCKGATE_LEDGER_FSYNC": "1" if fsync else "0",
                    "LOCKGATE_LEASE_SECONDS": str(LEASE),
                    "LOCKGATE_POLL_INTERVAL": "0.1",
                    "LOCKGATE_CONCURRENCY": str(concurrency),
                }
                argv = [sys.executable, "-m", "lockgate", "worker", "--pipelines", PIPELINES]
                self.procs.setdefault(n, []).append(self.hosts.spawn(n, argv, env, log))
                self.logs.setdefault(n, []).append(log)

    def kill_host(self, n: int) -> None:
        for proc in self.procs.get(n, []):
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def signal_host(self, n: int, sig: signal.Signals) -> None:
        for proc in self.procs.get(n, []):
            with suppress(ProcessLookupError):
                proc.send_signal(sig)

    def held_by(self, n: int) -> set[str]:
        """The unfinished runs whose lease a worker of host ``n`` holds now."""
        rows = self.app.store.read(
            lambda c: c.exec_driver_sql(
                "SELECT id FROM runs WHERE lease_owner LIKE %(w)s AND finished_at IS NULL",
                {"w": f"h{n}-%"},
            ).all()
        )
        return {str(r[0]) for r in rows}

    def moved(self, runs: set[str], n: int) -> bool:
        """Every one of ``runs`` finished or is held by a worker of another host."""
        if not runs:
            return True
        rows = self.app.store.read(
            lambda c: c.exec_driver_sql(
                "SELECT lease_owner, finished_at FROM runs WHERE id = ANY(%(ids)s)",
                {"ids": list(runs)},
            ).all()
        )
        return all(
            finished is not None or (owner is not None and not owner.startswith(f"h{n}-"))
            for owner, finished in rows
        )

    def wait(self, timeout: float, during: Callable[[float], None] | None = None) -> float:
        """Wait until no run is active (calling ``during(elapsed)`` meanwhile); seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if during is not None:
                    during(time.monotonic() - t0)
                if not self.app.store.count_active():
                    break
            except StoreError:
                pass  # PostgreSQL restarting: the bench's own reads wait too
            time.sleep(0.05)
        return time.monotonic() - t0

    def heard_from(self, n: int, since: float, most: float) -> float | None:
        """Seconds after ``since`` (UNIX time) until every worker of host ``n`` has
        heart-beaten again (``None``: not within ``most``)."""
        t0 = time.time()
        while time.time() - t0 < most:
            rows = self.app.store.read(
                lambda c: c.exec_driver_sql(
                    "SELECT MIN(heartbeat_at) FROM workers WHERE id LIKE %(w)s",
                    {"w": f"h{n}-%"},
                ).all()
            )
            if rows and rows[0][0] is not None and float(rows[0][0]) > since:
                return round(float(rows[0][0]) - since, 2)
            time.sleep(0.2)
        return None

    def settle(self, what: str, quiet: float, most: float) -> None:
        """Wait until ``what`` stops appearing in the workers' logs for ``quiet`` seconds."""
        seen, since, t0 = self.count_log(what), time.monotonic(), time.monotonic()
        while time.monotonic() - t0 < most and time.monotonic() - since < quiet:
            time.sleep(0.2)
            now = self.count_log(what)
            if now != seen:
                seen, since = now, time.monotonic()

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for procs in self.procs.values():
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def count_log(self, what: str, host: int | None = None) -> int:
        logs = [p for n, ps in self.logs.items() if host in (None, n) for p in ps]
        return sum(p.read_text(errors="replace").count(what) for p in logs if p.exists())

    def figures(self, hosts: int, raw: float) -> dict[str, Any]:
        """The audit, and the speed of the steps as the store recorded them."""
        twice: list[tuple[str, str]] = []
        checked = audit(self.app, self.ids, self.ledger, twice)
        for run_id, step in twice:  # what the workers said about it, to see why
            print(f"{self.name}: {step} of {run_id} ran again after completing", file=sys.stderr)
            for path in [p for ps in self.logs.values() for p in ps]:
                for line in path.read_text(errors="replace").splitlines():
                    if run_id in line:
                        print(f"  {path.name}: {line}", file=sys.stderr)
            for event in self.app.events(run_id):
                print(
                    f"  event {event.at:.6f} {event.step} {event.status} {event.message}",
                    file=sys.stderr,
                )
            for line in self.ledger.read_text().splitlines():
                if run_id in line:
                    print(f"  ledger {line}", file=sys.stderr)
        rows = self.app.store.read(
            lambda c: c.exec_driver_sql(
                "SELECT run_id, at FROM events WHERE status = 'COMPLETED' AND step IS NOT NULL "
                "ORDER BY run_id, at"
            ).all()
        )
        times = [float(at) for _, at in rows]
        gaps, last = [], {}
        for run_id, at in rows:
            if run_id in last:
                gaps.append((float(at) - last[run_id]) * 1000)
            last[run_id] = float(at)
        span = (max(times) - min(times)) if len(times) > 1 else 0.0
        return {
            "scenario": self.name.rsplit("-", 1)[0],
            "hosts": hosts,
            "runs": len(self.ids),
            "finished": checked["finished"],
            "lost": checked["lost"],
            "completed_step_reexecuted": checked["completed_step_reexecuted"],
            "non_idempotent_reexecuted": checked["non_idempotent_reexecuted"],
            "fenced_writes_refused": self.count_log("fenced write refused"),
            "steps_per_s": round(len(times) / span, 1) if span else 0.0,
            "p50_ms": round(percentile(gaps, 50), 2),
            "p99_ms": round(percentile(gaps, 99), 2),
            "raw_commits_per_s": round(raw, 1),
            "in_flight_reruns": checked["in_flight_reruns"],
            "leases_lost": self.count_log("lease lost"),
        }

    def close(self) -> None:
        self.stop()
        self.app.close()


@contextmanager
def load(
    server: PostgresServer, hosts: TestHosts, name: str, tmp: Path, **kw: Any
) -> Iterator[Load]:
    made = Load(server, hosts, name, tmp, **kw)
    try:
        yield made
    finally:
        made.close()


def scale_out(
    server: PostgresServer, count: int, runs: int, tmp: Path, delay: float = 0.0
) -> dict[str, Any]:
    """Drain a backlog of quick runs with one worker process per host."""
    name = f"{'slow-db' if delay else 'scale-out'}-{count}"
    with (
        TestHosts(count) as hosts,
        proxied(server, delay) as port,
        load(server, hosts, name, tmp, port=port) as lg,
    ):
        lg.queue("quick", runs)
        raw = raw_commit_rate(lg.url, clients=count)
        lg.start(per_host=1, concurrency=100, fsync=False)
        took = lg.wait(timeout=600)
        lg.stop()
        out = lg.figures(count, raw)
        out["drain_s"] = round(took, 2)
        if delay:
            out["added_round_trip_ms"] = delay * 1000
        return out


@contextmanager
def proxied(server: PostgresServer, delay: float) -> Iterator[int | None]:
    if not delay:
        yield None
        return
    with DelayProxy(server.port, delay) as proxy:
        yield proxy.port


def faulted(
    server: PostgresServer, scenario: str, count: int, runs: int, tmp: Path
) -> dict[str, Any]:
    """The chaos pipeline under load on ``count`` hosts, with one fault once a fifth of the
    runs have finished (every host busy by then)."""
    with TestHosts(count) as hosts, load(server, hosts, f"{scenario}-{count}", tmp) as lg:
        lg.queue("chaos", runs)
        raw = raw_commit_rate(lg.url, clients=count)
        lg.start(per_host=1, concurrency=20, fsync=True)
        state: dict[str, Any] = {}

        def fault(elapsed: float) -> None:
            if state.get("done"):
                return
            if "at" not in state:
                if lg.app.store.count_active() > runs * 0.8:
                    return
                state["at"] = time.monotonic()
                state["fault_at_s"] = round(elapsed, 2)
                state["held"] = lg.held_by(1)
                if scenario == "host-dies":
                    lg.kill_host(1)
                elif scenario == "cut-off":
                    hosts.cut(1)
                elif scenario == "paused":
                    lg.signal_host(1, signal.SIGSTOP)
                else:
                    t0 = time.monotonic()
                    server.restart("immediate")
                    state["restart_s"] = round(time.monotonic() - t0, 2)
                    state["done"] = True
                return
            since = time.monotonic() - state["at"]
            if "moved_s" not in state and lg.moved(state["held"], 1):
                state["moved_s"] = round(since, 2)
            if scenario in ("cut-off", "paused") and since >= 3 * LEASE and "healed" not in state:
                hosts.heal(1) if scenario == "cut-off" else lg.signal_host(1, signal.SIGCONT)
                state["healed"] = round(since, 2)
                state["healed_at"] = time.time()
            if "moved_s" in state and (scenario not in ("cut-off", "paused") or "healed" in state):
                state["done"] = True

        lg.wait(timeout=600, during=fault)
        if scenario in ("cut-off", "paused") and "at" in state and "healed_at" not in state:
            time.sleep(max(0.0, state["at"] + 3 * LEASE - time.monotonic()))
            # The others finished host 1's runs: it stays cut off (or stopped) for 3 leases.
            hosts.heal(1) if scenario == "cut-off" else lg.signal_host(1, signal.SIGCONT)
            state["healed"] = round(time.monotonic() - state["at"], 2)
            state["healed_at"] = time.time()
        if scenario in ("cut-off", "paused") and "healed_at" in state:
            # What the cut-off host wrote into its sockets lands once TCP retransmits (its
            # backoff grew while the link was down): wait for host 1's next heartbeat.
            state["back_s"] = lg.heard_from(1, state["healed_at"], most=60.0)
            lg.settle("fenced write refused", quiet=2.0, most=10.0)
        lg.stop()
        out = lg.figures(count, raw)
        out["lease_s"] = LEASE
        out["held_by_host_1"] = len(state.get("held", ()))
        for key in ("fault_at_s", "moved_s", "restart_s", "healed", "back_s"):
            if key in state:
                out["cut_for_s" if key == "healed" else key] = state[key]
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="every scenario, small (for CI)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--hosts", help="numbers of hosts, e.g. 1,2,4 (default per scenario)")
    parser.add_argument("--runs", type=int, help="runs per scenario (default by size)")
    parser.add_argument("--logs", type=Path, help="keep the workers' logs and ledgers here")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if any run was lost or any completed or non-idempotent step ran twice",
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.exit("bench/cluster.py makes network namespaces: it needs root and `ip` (iproute2)")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    scenarios = args.scenario or list(SCENARIOS)
    given = [int(h) for h in args.hosts.split(",")] if args.hosts else None
    quick_runs = args.runs or (300 if args.short else 3000)
    chaos_runs = args.runs or (300 if args.short else 2000)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-cluster-") as scratch,
        bridge(),
        PostgresServer(fsync=True, listen=[SERVER_IP], trusted=[f"{NET}.0/24"]) as server,
    ):
        tmp = str(args.logs or scratch)
        results = []
        for scenario in scenarios:
            if scenario in ("scale-out", "slow-db"):
                counts = given or ([1, 2] if args.short else [1, 2, 4])
                delay = 0.02 if scenario == "slow-db" else 0.0
                for count in counts:
                    results.append(scale_out(server, count, quick_runs, Path(tmp), delay))
                    print(json.dumps(results[-1]), flush=True)
            else:
                counts = given or ([2] if args.short else [2, 4])
                for count in counts:
                    results.append(faulted(server, scenario, count, chaos_runs, Path(tmp)))
                    print(json.dumps(results[-1]), flush=True)
    broken = [
        f"{r['scenario']} on {r['hosts']}: {key} {r[key]}"
        for r in results
        for key in ("lost", "completed_step_reexecuted", "non_idempotent_reexecuted")
        if r[key]
    ]
    if args.check and broken:
        sys.exit("the audit failed: " + "; ".join(broken))


if __name__ == "__main__":
    main()
