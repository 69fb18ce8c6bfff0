"""Webhook intake under ``wrk``: verified, durable deliveries per second against the same
server's hello-world rate, with a load generator that is not the bottleneck.

    python bench/intake_wrk.py --db sqlite
    python bench/intake_wrk.py --db postgres        # starts its own PostgreSQL

The server process (``bench/intake_server.py``: the real API and a worker, as ``lockgate
server`` runs them; with ``--no-execute`` its worker takes no runs, which are left for workers
elsewhere) is pinned to one core and ``wrk`` to the other. Every delivery is a
distinct GitHub push (its own commit and delivery id) signed beforehand, so each one is
verified, stored and starts a run; a delivery answered with anything but 202 is counted as
a failure. ``wrk`` is installed from Debian's packages when it is missing (as root).

The last line is JSON: ``deliveries_per_s``, ``hello_world_rps``, ``ratio``, the p50/p99
latency wrk measured for each, and ``non_202`` (deliveries not accepted: must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import add_db_args, database
from http_bench import HELLO, server_process
from intake_server import SECRET

#: Cores: the server on the first, wrk on the second (PostgreSQL where the kernel puts it).
SERVER_CPU, LOAD_CPU = 0, 1

LUA = """
local bodies = dofile("%(data)s")
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  step = %(threads)d
  i = id
  refused = 0
end
function request()
  local item = bodies[(i %% #bodies) + 1]
  i = i + step
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = item[3],
    ["X-Hub-Signature-256"] = item[2],
  }, item[1])
end
function response(status, headers, body)
  if status ~= 202 then refused = refused + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("refused") end
  io.write(string.format("NON202 %%d\\n", n))
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def signed_pushes(n: int) -> str:
    """A Lua chunk returning ``n`` distinct signed push bodies: {body, signature, id}."""
    items = []
    for _ in range(n):
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": "0" * 40,
                "after": uuid.uuid4().hex + "0" * 8,
                "repository": {"full_name": "acme/shop", "name": "shop"},
                "pusher": {"name": "octocat"},
                "sender": {"login": "octocat"},
                "head_commit": {"id": "1" * 40, "message": "ship"},
            }
        )
        sig = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        items.append(f"{{{lua_string(body)}, {lua_string(sig)}, {lua_string(str(uuid.uuid4()))}}}")
    return "return {\n" + ",\n".join(items) + "\n}\n"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: apt-get install wrk")
    print("installing wrk (apt-get)", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "/usr/bin/wrk"


def ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(wrk: str, url: str, args: argparse.Namespace, script: Path | None) -> dict[str, float]:
    command = [
        "taskset", "-c", str(LOAD_CPU), wrk, "--latency",
        "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
    ]  # fmt: skip
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"\s50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = re.search(r"NON202 (\d+)", out)
    return {
        "rps": rate,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "non_202": int(refused.group(1)) if refused else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_args(parser)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--bodies", type=int, default=40_000, help="distinct signed pushes (more than are sent)"
    )
    parser.add_argument(
        "--no-execute",
        action="store_true",
        help="the server creates the runs and leaves them to workers elsewhere",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("two cores are needed: one for the server, one for wrk")
    with tempfile.TemporaryDirectory(prefix="lockgate-wrk-") as tmp:
        data = Path(tmp) / "pushes.lua"
        data.write_text(signed_pushes(args.bodies))
        with (
            database(args.db, args.url) as db_url,
            server_process(
                "intake_server.py",
                db_url,
                cpus={SERVER_CPU},
                extra=["--no-execute"] if args.no_execute else [],
            ) as (base, trigger),
        ):
            script = Path(tmp) / "intake.lua"
            script.write_text(
                LUA % {"data": data, "threads": args.threads, "path": f"/hooks/{trigger}"}
            )
            hello = run_wrk(wrk, base + HELLO[1], args, None)
            intake = run_wrk(wrk, base + f"/hooks/{trigger}", args, script)
    sent = intake["rps"] * args.seconds
    figures = {
        "db": args.db,
        "load": "wrk",
        "runs_executed_here": not args.no_execute,
        "deliveries_per_s": round(intake["rps"], 1),
        "p50_ms": intake["p50_ms"],
        "p99_ms": intake["p99_ms"],
        "hello_world_rps": round(hello["rps"], 1),
        "hello_p50_ms": hello["p50_ms"],
        "ratio": round(intake["rps"] / max(1.0, hello["rps"]), 3),
        "non_202": int(intake["non_202"]),
        "bodies_left": int(args.bodies - sent),
    }
    print(json.dumps(figures))
    if figures["non_202"] or figures["bodies_left"] < 0:
        raise SystemExit("some deliveries were not accepted (or bodies ran out): see non_202")


if __name__ == "__main__":
    main()
