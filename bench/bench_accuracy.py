"""Accuracy: the harness's P50/P95/P99 against the ground truth a loopback server records.

    .venv/bin/python bench/bench_accuracy.py [--users 60] [--duration 30] [--median-ms 200] [--sigma 0.5]

A Node server answers ``GET /contacts/by-phone`` after a log-normal delay
(median ``--median-ms``, shape ``--sigma``) and records, per response that was
fully sent, its own elapsed time (request received -> response handed to the
kernel, ``process.hrtime``): the ground truth.  One headless Locust run of
``ConvexHttpUser`` (open loop of users, no wait) records the same lookups.
The table compares the exact percentiles of the truth (nearest rank) with the
harness's HDR artifact and with Locust's own ``_stats.csv`` percentiles for
the same ``lookup`` row.  Goal: harness error <= 1 %.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
WS = "11111111-2222-4333-8444-555555555555"
PERCENTILES = (50, 95, 99)

SERVER_JS = r"""
const http = require("http");
const fs = require("fs");
const [port, medianMs, sigma, out] = [+process.argv[2], +process.argv[3], +process.argv[4], process.argv[5]];
const body = JSON.stringify({contact: {id: "c1", phone: "6281200000001"}, workspace: {id: "w", name: "E"},
                             conversations: [], notes: []});
const truth = [];
function normal() {  // Box-Muller
  let u = 0; while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}
http.createServer((req, res) => {
  const t0 = process.hrtime.bigint();
  const delay = medianMs * Math.exp(sigma * normal());
  res.on("finish", () => truth.push(Number(process.hrtime.bigint() - t0) / 1e6));
  setTimeout(() => {
    res.writeHead(200, {"content-type": "application/json", "content-length": Buffer.byteLength(body)});
    res.end(body);
  }, delay);
}).listen(port, "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => { fs.writeFileSync(out, truth.join("\n")); process.exit(0); });
"""

LOCUSTFILE = r"""
import harness.runtime  # noqa: F401
from harness.users import ConvexHttpUser

__all__ = ["ConvexHttpUser"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nearest_rank(sorted_values: list[float], p: float) -> float:
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--duration", type=int, default=30, help="seconds")
    ap.add_argument("--median-ms", type=float, default=200.0)
    ap.add_argument("--sigma", type=float, default=0.5)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "server.js").write_text(SERVER_JS)
        (tmp / "lf.py").write_text(LOCUSTFILE)
        (tmp / "workload.json").write_text(json.dumps({
            "format": "crm-workload/1", "generated_at": "2026-01-01T00:00:00Z", "workspaces": [],
            "known": [{"workspace_id": WS, "phone": "6281200000001", "weight": 1}], "unknown": [],
        }))
        truth_file = tmp / "truth.txt"
        server = subprocess.Popen(
            ["node", str(tmp / "server.js"), str(port), str(args.median_ms), str(args.sigma), str(truth_file)],
            stdout=subprocess.PIPE, text=True,
        )
        assert server.stdout is not None
        server.stdout.readline()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVEX_SITE_URL": url, "CRM_API_KEY": "k",
               "ENV_FILE": str(tmp / "none.env")}
        for k in ("SUPABASE_URL", "CONVEX_URL", "APP_URL", "TEST_PHONE", "TEST_WORKSPACE_ID"):
            env.pop(k, None)
        try:
            proc = subprocess.run(
                [LOCUST, "-f", str(tmp / "lf.py"), "--headless", "-u", str(args.users), "-r", str(args.users),
                 "-t", f"{args.duration}s", "--csv", str(tmp / "run"), "--targets", "convex_http", "--warmup", "0",
                 "--unknown-weight", "0", "--write-weight", "0", "--no-verdict-exit-code", "--only-summary",
                 "--loglevel", "WARNING"],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=args.duration + 60,
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
        if proc.returncode not in (0, 1):
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        truth = sorted(float(x) for x in truth_file.read_text().split())
        doc = json.loads((tmp / "run_hdr.json").read_text())
        entry = next(e for e in doc["entries"] if (e["type"], e["name"], e["step"]) == ("lookup", "convex_http", None))
        hist = HdrHistogram.decode(entry["hdr"].encode())
        call = next(e for e in doc["entries"] if (e["name"], e["step"]) == ("convex_http /contacts/by-phone", None))
        call_hist = HdrHistogram.decode(call["hdr"].encode())
        with open(tmp / "run_stats.csv", newline="") as f:
            locust_row = next(r for r in csv.DictReader(f) if (r["Type"], r["Name"]) == ("lookup", "convex_http"))

    print(f"accuracy: log-normal server delay, median {args.median_ms:g} ms, sigma {args.sigma}; {args.users} users, "
          f"{args.duration} s; truth n={len(truth)}, harness n={hist.get_total_count()} "
          f"(failures {entry['failures']}), Locust CSV n={locust_row['Request Count']}")
    print(f"{'percentile':<12}{'truth ms':>10}{'harness ms':>12}{'error':>9}{'HTTP row ms':>13}{'error':>9}"
          f"{'Locust CSV ms':>15}{'error':>9}")
    worst = 0.0
    for p in PERCENTILES:
        t = nearest_rank(truth, p)
        h = hist.get_value_at_percentile(p) / 1000.0
        c = call_hist.get_value_at_percentile(p) / 1000.0
        lc = float(locust_row[f"{p}%"])
        eh, ec, el = (h - t) / t, (c - t) / t, (lc - t) / t
        worst = max(worst, abs(eh))
        print(f"{'P' + str(p):<12}{t:>10.2f}{h:>12.2f}{eh:>9.2%}{c:>13.2f}{ec:>9.2%}{lc:>15.0f}{el:>9.2%}")
    print(f"harness = the lookup transaction (HDR); HTTP row = its single call (HDR); load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"worst harness error: {worst:.2%} (goal <= 1.00%: {'met' if worst <= 0.01 else 'NOT met'})")
    return 0 if worst <= 0.01 else 3


if __name__ == "__main__":
    sys.exit(main())
