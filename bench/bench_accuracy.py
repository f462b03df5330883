"""Accuracy: the harness's P50/P95/P99 against the ground truth a loopback server records.

    .venv/bin/python -m bench.bench_accuracy [--runs 4] [--users 60] [--duration 15] [--median-ms 200] [--sigma 0.5]

A Node server answers ``GET /contacts/by-phone`` after a log-normal delay
(median ``--median-ms``, shape ``--sigma``) and records, per response that was
fully sent, its own elapsed time (request received -> response handed to the
kernel, ``process.hrtime``): the ground truth.  One headless Locust run of
``ConvexHttpUser`` (open loop of users, no wait) records the same lookups.
The table compares the exact percentiles of the truth (nearest rank) with the
harness's HDR artifact and with Locust's own ``_stats.csv`` percentiles for
the same ``lookup`` row.  The error is measured side by side by nature (the
same requests, seen from both ends); runs are repeated (``--runs``) and each
percentile's error is reported as its median over the runs with a 95 %
interval.  Goal: the worst harness error (of P50, P95, P99) <= 1 %.
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
from typing import Any

from hdrh.histogram import HdrHistogram

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs

NAME = "accuracy"
HEADING = "## Load harness\n\n### Accuracy"
GOAL = pairs.Goal("worst harness error", 1.0, at_least=False)
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


def one_run(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One Locust run against the delaying server: per percentile, truth and what each reader saw (ms)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    truth_file = tmp / "truth.txt"
    truth_file.unlink(missing_ok=True)
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
             # users finish the lookup in flight at the end, so the truth and the harness see the same requests
             "-t", f"{args.duration}s", "--stop-timeout", "30", "--csv", str(tmp / "run"),
             "--targets", "convex_http", "--warmup", "0",
             "--unknown-weight", "0", "--write-weight", "0", "--no-verdict-exit-code", "--only-summary",
             "--loglevel", "WARNING"],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=args.duration + 90,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"error: locust failed ({proc.returncode}): {proc.stderr[-1500:]}")
    truth = sorted(float(x) for x in truth_file.read_text().split())
    doc = json.loads((tmp / "run_hdr.json").read_text())
    entry = next(e for e in doc["entries"] if (e["type"], e["name"], e["step"]) == ("lookup", "convex_http", None))
    hist = HdrHistogram.decode(entry["hdr"].encode())
    call = next(e for e in doc["entries"] if (e["name"], e["step"]) == ("convex_http /contacts/by-phone", None))
    call_hist = HdrHistogram.decode(call["hdr"].encode())
    with open(tmp / "run_stats.csv", newline="") as f:
        locust_row = next(r for r in csv.DictReader(f) if (r["Type"], r["Name"]) == ("lookup", "convex_http"))
    out: dict[str, Any] = {"n_truth": len(truth), "n_harness": hist.get_total_count(), "failures": entry["failures"]}
    for p in PERCENTILES:
        out[f"P{p}"] = {"truth": nearest_rank(truth, p), "harness": hist.get_value_at_percentile(p) / 1000.0,
                        "http": call_hist.get_value_at_percentile(p) / 1000.0, "locust": float(locust_row[f"{p}%"])}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="repeated runs (default 4)")
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--duration", type=int, default=15, help="seconds per run (default 15)")
    ap.add_argument("--median-ms", type=float, default=200.0)
    ap.add_argument("--sigma", type=float, default=0.5)
    ap.add_argument("--write-docs", action="store_true", help="rewrite this benchmark's block of docs/benchmarks.md")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results, with metadata, as JSON")
    ap.add_argument("--pairs", type=int, help=argparse.SUPPRESS)  # `python -m bench --pairs`: not paired, ignored
    args = ap.parse_args(argv)
    mach = pairs.machine()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_s, pairs.LoadMonitor() as load:
        tmp = Path(tmp_s)
        (tmp / "server.js").write_text(SERVER_JS)
        (tmp / "lf.py").write_text(LOCUSTFILE)
        (tmp / "workload.json").write_text(json.dumps({
            "format": "crm-workload/1", "generated_at": "2026-01-01T00:00:00Z", "workspaces": [],
            "known": [{"workspace_id": WS, "phone": "6281200000001", "weight": 1}], "unknown": [],
        }))
        print(f"accuracy: log-normal server delay, median {args.median_ms:g} ms, sigma {args.sigma}; {args.users} users, "
              f"{args.runs} runs of {args.duration} s", flush=True)
        for i in range(args.runs):
            r = one_run(tmp, args)
            runs.append(r)
            errs = ", ".join(f"P{p} {100 * (r[f'P{p}']['harness'] / r[f'P{p}']['truth'] - 1):+.2f} %" for p in PERCENTILES)
            print(f"  run {i + 1}: n={r['n_truth']} (harness {r['n_harness']}, failures {r['failures']}): {errs}", flush=True)

    def err(r: dict[str, Any], p: int, reader: str) -> float:
        return 100 * (r[f"P{p}"][reader] / r[f"P{p}"]["truth"] - 1)

    checks: list[pairs.Check] = []
    for p in PERCENTILES:
        checks.append(pairs.Check(f"P{p} truth", [r[f"P{p}"]["truth"] for r in runs], unit="ms"))
        for reader, label in (("harness", "harness (HDR)"), ("http", "HTTP row (HDR)"), ("locust", "Locust CSV")):
            checks.append(pairs.Check(f"P{p} error, {label}", [err(r, p, reader) for r in runs], unit="%"))
    worst = pairs.Check("worst harness error (P50, P95, P99), absolute",
                        [max(abs(err(r, p, "harness")) for p in PERCENTILES) for r in runs], unit="%", goal=GOAL)
    checks.append(worst)
    table = pairs.checks_table(checks)
    print(table)
    for line in pairs.verdict_lines([worst]):
        print(line)
    n = sum(r["n_truth"] for r in runs)
    failures = sum(r["failures"] for r in runs)
    print(f"{load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_accuracy", argv)
    if args.json:
        pairs.write_json(args.json, NAME, checks, mach, load, command, {"runs": runs})
    if args.write_docs:
        body = (
            f"Command: `{command}` ({args.runs} runs of {args.duration} s, {args.users} users, server delay median "
            f"{args.median_ms:g} ms, sigma {args.sigma})  \n"
            f"Machine: {mach.label()}; {load.label()}.  \n"
            f"n = {n:,} lookups (truth) over the runs, {failures} failures.\n\n"
            f"{table}\n\n" + "\n".join(f"- {line}" for line in pairs.verdict_lines([worst]))
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code([worst])


if __name__ == "__main__":
    sys.exit(main())
