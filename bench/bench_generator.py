"""Generator capacity: the harness's user class next to a plain FastHttpUser, same run, same core.

    .venv/bin/python bench/bench_generator.py [--users 50] [--duration 10] [--repeat 3]

A trivial loopback endpoint (Node's http module, pinned to the last core) answers
``GET /contacts/by-phone`` with a small lookup object.  One Locust process
(pinned to core 0) runs ``ConvexHttpUser`` (transaction row, HDR recording,
JSON check, workload draw) and ``PlainUser`` (a bare ``FastHttpUser`` GET of the
same URL with the same headers) with equal user counts and no wait, so both
compete for the same CPU; then each class alone.  Prints requests/s of each,
their ratios (goal: harness / plain >= 0.8) and the Locust process's CPU use.
Side by side, gevent serves the greenlets round-robin, so both classes get the
same request count whatever each costs; the alone runs and the per-CPU-second
ratio show the harness's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
WS = "11111111-2222-4333-8444-555555555555"

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
import time

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

import harness.runtime  # noqa: F401
from harness.users import ConvexHttpUser

PATH = "/contacts/by-phone?workspaceId={ws}&phone=6281200000001"


class PlainUser(FastHttpUser):
    wait_time = constant(0)
    insecure = False
    host = "{url}"

    @task
    def get(self):
        self.client.get(PATH, name="plain", headers={{"x-api-key": "k", "Accept": "application/json"}})


_T0 = [0.0]


@events.test_start.add_listener
def _start(environment, **kw):
    _T0[0] = time.process_time()


@events.test_stop.add_listener
def _stop(environment, **kw):
    # CPU seconds of this process during the test: robust to other processes sharing the machine
    with open("cpu.json", "w") as f:
        json.dump({{"cpu_s": time.process_time() - _T0[0]}}, f)


__all__ = ["ConvexHttpUser", "PlainUser"]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(tmp: Path, url: str, classes: list[str], users: int, duration: int, pin: list[str]) -> tuple[dict, float]:
    """One headless run; returns Locust's final rows and the Locust process's CPU use (cores)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVEX_SITE_URL": url, "CRM_API_KEY": "k",
           "ENV_FILE": str(tmp / "none.env")}
    for k in ("SUPABASE_URL", "CONVEX_URL", "APP_URL", "TEST_PHONE", "TEST_WORKSPACE_ID"):
        env.pop(k, None)
    n = users * len(classes)
    cmd = [*pin, LOCUST, "-f", str(tmp / "lf.py"), "--headless", "-u", str(n), "-r", str(n), "-t", f"{duration}s",
           "--json-file", str(tmp / "final"), "--targets", "convex_http", "--warmup", "0", "--unknown-weight", "0",
           "--write-weight", "0", "--no-verdict-exit-code", "--only-summary", "--loglevel", "WARNING", *classes]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(min(3.0, duration / 4))
    c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
    time.sleep(duration / 2)
    cpu = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0)
    _, err = proc.communicate(timeout=duration + 60)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"locust failed ({proc.returncode}): {err[-1500:]}")
    rows = {(r["method"], r["name"]): r for r in json.loads((tmp / "final.json").read_text())}
    rows[("cpu", "")] = json.loads((tmp / "cpu.json").read_text())
    return rows, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50, help="users per class (enough to keep the core saturated)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--repeat", type=int, default=3, help="alone runs per class, alternating; medians reported")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    d = args.duration
    with tempfile.TemporaryDirectory() as tmp_s:
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
        try:
            both, cpu_both = run(tmp, url, ["ConvexHttpUser", "PlainUser"], args.users, d, pin)
            runs_h, runs_p = [], []
            for _ in range(args.repeat):  # alternate, so drifting background load hits both alike
                runs_h.append(run(tmp, url, ["ConvexHttpUser"], args.users, d, pin))
                runs_p.append(run(tmp, url, ["PlainUser"], args.users, d, pin))
        finally:
            server.terminate()
            server.wait(timeout=10)

    def rps(rows: dict, key: tuple[str, str]) -> float:
        return rows[key]["num_requests"] / d

    def fails(rows: dict, key: tuple[str, str]) -> int:
        return int(rows[key]["num_failures"])

    H, P = ("lookup", "convex_http"), ("GET", "plain")

    def us_per(rows: dict, key: tuple[str, str]) -> float:
        return rows[("cpu", "")]["cpu_s"] / rows[key]["num_requests"] * 1e6

    # the median run of each class (by CPU per lookup) stands for it
    alone_h, cpu_h = sorted(runs_h, key=lambda r: us_per(r[0], H))[len(runs_h) // 2]
    alone_p, cpu_p = sorted(runs_p, key=lambda r: us_per(r[0], P))[len(runs_p) // 2]
    print(f"generator capacity: {args.users} users per class, no wait, {d} s per run; Locust pinned to core 0, "
          f"Node server pinned to core {cores - 1}")
    print(f"{'run':<34}{'user class':<28}{'req/s':>9}{'failures':>10}{'Locust CPU':>12}")
    print(f"{'same run (side by side)':<34}{'ConvexHttpUser (harness)':<28}{rps(both, H):>9.0f}{fails(both, H):>10}{cpu_both:>12.0%}")
    print(f"{'':<34}{'PlainUser (FastHttpUser)':<28}{rps(both, P):>9.0f}{fails(both, P):>10}")
    print(f"{'alone (median run)':<34}{'ConvexHttpUser (harness)':<28}{rps(alone_h, H):>9.0f}{fails(alone_h, H):>10}{cpu_h:>12.0%}")
    print(f"{'alone (median run)':<34}{'PlainUser (FastHttpUser)':<28}{rps(alone_p, P):>9.0f}{fails(alone_p, P):>10}{cpu_p:>12.0%}")
    same = rps(both, H) / rps(both, P)
    alone = rps(alone_h, H) / rps(alone_p, P)
    us_h, us_p = us_per(alone_h, H), us_per(alone_p, P)
    all_h = ", ".join(f"{us_per(r, H):.0f}" for r, _ in runs_h)
    all_p = ", ".join(f"{us_per(r, P):.0f}" for r, _ in runs_p)
    print(f"CPU per lookup (alone runs, Locust process CPU time / count): harness {us_h:.0f} us (runs: {all_h}), "
          f"plain {us_p:.0f} us (runs: {all_p}) -> lookups per core-second {1e6 / us_h:.0f} vs {1e6 / us_p:.0f}")
    print(f"load average during the runs: {os.getloadavg()[0]:.2f} on {cores} cores (other processes skew the numbers)")
    per_cpu = us_p / us_h
    print(f"ratio harness / plain: same run {same:.2f}, alone (wall clock) {alone:.2f}, "
          f"per core (CPU time) {per_cpu:.2f} (goal >= 0.80)")
    return 0 if min(same, per_cpu) >= 0.8 else 3


if __name__ == "__main__":
    sys.exit(main())
