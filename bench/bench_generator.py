"""Generator capacity: the harness's user class against a plain FastHttpUser, in interleaved windows.

    .venv/bin/python -m bench.bench_generator [--pairs 20] [--users 50] [--window 2] [--write-docs]

A trivial loopback endpoint (Node's http module, pinned to the last core)
answers ``GET /contacts/by-phone`` with a small lookup object.  One headless
Locust process, pinned to core 0, holds ``--users`` users of each class:
``ConvexHttpUser`` (transaction row, HDR recording of the call, its phases and
the transaction, JSON check, workload draw) and ``PlainUser`` (a bare
``FastHttpUser`` GET of the same URL with the same headers), no wait.  Only one
class runs at a time: the other's users are parked between requests.  After a
warm-up of each, the classes take turns in windows of ``--window`` seconds, in
pairs: harness then plain, plain then harness, ..., so both halves of a pair
see the same background load and the same process.  A window's cost is the
Locust process's CPU time per lookup of the class that ran; a pair's capacity
ratio is plain CPU per lookup / harness CPU per lookup (= harness lookups per
core-second / plain lookups per core-second).  Goal: the ratio's median, with
its 95 % interval, >= 0.85.

Both classes running at once would not tell: gevent serves the greenlets
round-robin, so both get the same request count whatever each costs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
WS = "11111111-2222-4333-8444-555555555555"
NAME = "generator"
HEADING = "## Load harness\n\n### Generator capacity"
GOAL = pairs.Goal("harness/plain capacity (lookups per core-second)", 0.85)
# (class, stats entry name, method) of what one lookup is, per class
CLASSES = {"a": "ConvexHttpUser", "b": "PlainUser"}

SERVER_JS = r"""
const http = require("http");
const body = JSON.stringify({contact: {id: "c1", phone: "6281200000001"}, workspace: {id: "w", name: "E"},
                             conversations: [], notes: []});
http.createServer((req, res) => {
  res.writeHead(200, {"content-type": "application/json", "content-length": Buffer.byteLength(body)});
  res.end(body);
}).listen(+process.argv[2], "127.0.0.1", () => console.log("ready"));
"""

LOCUSTFILE = r'''
import json
import os
import time

import gevent
from gevent.event import Event
from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

import harness.runtime  # noqa: F401
from harness.users import ConvexHttpUser

PATH = "/contacts/by-phone?workspaceId={ws}&phone=6281200000001"
ORDER = json.loads(os.environ["BENCH_ORDER"])  # the sides, window by window
WINDOW_S = float(os.environ["BENCH_WINDOW_S"])
WARMUP_S = float(os.environ["BENCH_WARMUP_S"])
SETTLE_S = 0.25  # the parked class's requests in flight finish before a window starts
GATES = {{"a": Event(), "b": Event()}}
ENTRIES = {{"a": ("convex_http", "lookup"), "b": ("plain", "GET")}}


def parked(side, wait):
    def wait_time(self):
        GATES[side].wait()
        return wait(self)
    return wait_time


ConvexHttpUser.wait_time = parked("a", ConvexHttpUser.wait_time)


class PlainUser(FastHttpUser):
    wait_time = parked("b", constant(0))
    insecure = False
    host = "{url}"

    @task
    def get(self):
        self.client.get(PATH, name="plain", headers={{"x-api-key": "k", "Accept": "application/json"}})


def _count(environment, side):
    entry = environment.stats.entries.get(ENTRIES[side])
    return (entry.num_requests, entry.num_failures) if entry else (0, 0)


def _run(side):
    for s, gate in GATES.items():
        if s != side:
            gate.clear()
    if side:
        GATES[side].set()


def _control(environment):
    try:
        for side in ("a", "b"):
            _run(side)
            gevent.sleep(WARMUP_S)
        windows = []
        for side in ORDER:
            _run(side)
            gevent.sleep(SETTLE_S)
            (n0, f0), c0, t0 = _count(environment, side), time.process_time(), time.perf_counter()
            gevent.sleep(WINDOW_S)
            (n1, f1), c1, t1 = _count(environment, side), time.process_time(), time.perf_counter()
            windows.append({{"side": side, "cpu_s": c1 - c0, "lookups": n1 - n0, "failures": f1 - f0,
                            "wall_s": t1 - t0, "load": os.getloadavg()[0]}})
        with open("windows.json", "w") as f:
            json.dump(windows, f)
    finally:
        _run(None)
        environment.runner.quit()


@events.test_start.add_listener
def _start(environment, **kw):
    gevent.spawn(_control, environment)


__all__ = ["ConvexHttpUser", "PlainUser"]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(tmp: Path, url: str, sides: Sequence[str], users: int, window: float, warmup: float,
        pin: list[str]) -> list[dict[str, Any]]:
    """One headless Locust process running the windows in ``sides`` order; returns them as measured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVEX_SITE_URL": url, "CRM_API_KEY": "k",
           "ENV_FILE": str(tmp / "none.env"), "BENCH_ORDER": json.dumps(sides), "BENCH_WINDOW_S": str(window),
           "BENCH_WARMUP_S": str(warmup)}
    for k in ("SUPABASE_URL", "CONVEX_URL", "APP_URL", "TEST_PHONE", "TEST_WORKSPACE_ID"):
        env.pop(k, None)
    bound = int(2 * warmup + len(sides) * (window + 0.25) + 30)
    cmd = [*pin, LOCUST, "-f", str(tmp / "lf.py"), "--headless", "-u", str(2 * users), "-r", str(2 * users),
           "-t", f"{bound}s", "--targets", "convex_http", "--warmup", "0",
           "--unknown-weight", "0", "--write-weight", "0", "--no-verdict-exit-code", "--only-summary",
           "--loglevel", "WARNING", "ConvexHttpUser", "PlainUser"]
    proc = subprocess.run(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=bound + 60)
    if proc.returncode not in (0, 1) or not (tmp / "windows.json").exists():
        raise SystemExit(f"error: locust failed ({proc.returncode}): {proc.stderr[-1500:]}")
    windows: list[dict[str, Any]] = json.loads((tmp / "windows.json").read_text())
    for w in windows:
        if w["lookups"] <= 0:
            raise SystemExit(f"error: a {CLASSES[w['side']]} window made no lookup")
        w["us_per_lookup"] = w["cpu_s"] / w["lookups"] * 1e6
        w["rps"] = w["lookups"] / w["wall_s"]
    return windows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50, help="users of each class (enough to keep the core saturated)")
    ap.add_argument("--window", type=float, default=2.0, help="measured seconds per class and pair (default 2)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds each class runs before the first pair")
    pairs.add_arguments(ap, pairs=20)
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mach = pairs.machine()
    sides = [side for pair in pairs.order(args.pairs) for side in pair]
    with tempfile.TemporaryDirectory() as tmp_s, pairs.LoadMonitor() as load:
        tmp = Path(tmp_s)
        (tmp / "server.js").write_text(SERVER_JS)
        (tmp / "lf.py").write_text(LOCUSTFILE.format(ws=WS, url=url))
        (tmp / "workload.json").write_text(json.dumps({
            "format": "crm-workload/1", "generated_at": "2026-01-01T00:00:00Z", "workspaces": [],
            "known": [{"workspace_id": WS, "phone": "6281200000001", "weight": 1}], "unknown": [],
        }))
        pin_server = ["taskset", "-c", str(cores - 1)] if cores > 1 else []
        pin = ["taskset", "-c", "0"] if cores > 1 else []
        server = subprocess.Popen([*pin_server, "node", str(tmp / "server.js"), str(port)], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        server.stdout.readline()
        print(f"generator capacity: {args.pairs} pairs of {args.window:g} s windows, {args.users} users per class, "
              f"no wait; Locust pinned to core 0, Node server to core {cores - 1}", flush=True)
        try:
            windows = run(tmp, url, sides, args.users, args.window, args.warmup, pin)
        finally:
            server.terminate()
            server.wait(timeout=10)
    got_h = [w for w in windows if w["side"] == "a"]
    got_p = [w for w in windows if w["side"] == "b"]
    for i, (h, p) in enumerate(zip(got_h, got_p, strict=True)):
        print(f"  pair {i + 1:>2}: harness {h['us_per_lookup']:6.1f} us/lookup, plain {p['us_per_lookup']:6.1f} "
              f"-> ratio {p['us_per_lookup'] / h['us_per_lookup']:.3f}  (load {h['load']:.2f})")
    cpu = pairs.Comparison(
        "Locust CPU per lookup", "harness", "plain", [r["us_per_lookup"] for r in got_h],
        [r["us_per_lookup"] for r in got_p], unit="µs", inverse=True,
        estimate_label="capacity ratio harness/plain (plain µs ÷ harness µs)", goal=GOAL)
    rps = pairs.Comparison("lookups/s (core 0, shared)", "harness", "plain", [r["rps"] for r in got_h],
                           [r["rps"] for r in got_p], estimate_label="harness/plain (wall clock)")
    comparisons = [cpu, rps]
    failures = sum(r["failures"] for r in (*got_h, *got_p))
    table = pairs.summary_table(comparisons)
    print(table)
    for line in pairs.verdict_lines(comparisons):
        print(line)
    print(f"failures: {failures}; {load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_generator", argv)
    if args.json:
        pairs.write_json(args.json, NAME, comparisons, mach, load, command,
                         {"runs": {"harness": got_h, "plain": got_p}})
    if args.write_docs:
        body = (
            f"{pairs.header_lines(command, mach, load, args.pairs)}  \n"
            f"One Locust process, {args.users} users per class, no wait; windows of {args.window:g} s per class "
            f"after {args.warmup:g} s of warm-up each; Locust pinned to core 0, the Node server to core {cores - 1}; "
            f"{failures} failures.\n\n"
            f"{table}\n\n"
            + "\n".join(f"- {line}" for line in pairs.verdict_lines(comparisons))
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code(comparisons)


if __name__ == "__main__":
    sys.exit(main())
