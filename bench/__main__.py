"""Runs the benchmarks one after the other: ``python -m bench [NAME ...] [--write-docs] [--pairs N]``.

Each benchmark runs in a process of its own, bounded in time; those that need
the sandbox start one under the shared lock and stop it (``bench.pairs.sandbox``).
With ``--write-docs`` each rewrites its block of ``docs/benchmarks.md``.  Exit
status: 0 when every goal is met, 3 when one is not met, 4 when one is
undecided (and none missed), 1 when a benchmark failed to run.  The bounds
(``timeout_s``) include waiting for the sandbox lock when a test session holds it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    command: tuple[str, ...]
    about: str
    timeout_s: int


BENCHES = [
    Bench("generator", ("-m", "bench.bench_generator"), "harness vs plain FastHttpUser: Locust CPU per lookup", 300),
    Bench("decide", ("-m", "bench.bench_decide"), "reports decide: pandas vs the previous reader, time and peak RSS", 600),
    Bench("accuracy", ("-m", "bench.bench_accuracy"), "harness percentiles vs a server's ground truth", 300),
    Bench("gateway", ("-m", "bench.bench_gateway"), "REST gateway vs the same SQL through asyncpg (sandbox)", 900),
    Bench("seed", ("-m", "bench.bench_seed"), "seed migrate vs the runtime's write path alone (sandbox)", 900),
    Bench("convex", ("-m", "bench.node", "convex"), "Convex runtime: HTTP action vs api/query", 600),
    Bench("realtime", ("-m", "bench.node", "realtime"), "Realtime fan-out: Convex sync vs Supabase Realtime (sandbox)", 900),
    Bench("relay", ("-m", "bench.bench_relay"), "network relay: overhead, capacity, planted-delay accuracy", 600),
    Bench("diagnose", ("-m", "bench.bench_diagnose"), "reports diagnose on 10k contacts, 20 sampled phones (sandbox)", 900),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help=f"benchmarks to run (default: all): {', '.join(b.name for b in BENCHES)}")
    ap.add_argument("--pairs", type=int, help="interleaved pairs (default: each benchmark's own)")
    ap.add_argument("--write-docs", action="store_true", help="rewrite each benchmark's block of docs/benchmarks.md")
    ap.add_argument("--json-dir", type=Path, help="write each benchmark's results as NAME.json in this folder")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    if args.list:
        for b in BENCHES:
            print(f"{b.name:<10} {b.about}")
        return 0
    known = {b.name: b for b in BENCHES}
    names = [n for spec in args.names for n in spec.replace(",", " ").split()] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    worst = 0
    summary: list[str] = []
    started = time.monotonic()
    for name in names:
        b = known[name]
        cmd = [sys.executable, *b.command]
        if args.pairs:
            cmd += ["--pairs", str(args.pairs)]
        if args.write_docs:
            cmd.append("--write-docs")
        if args.json_dir:
            cmd += ["--json", str(args.json_dir / f"{name}.json")]
        print(f"== {name}: {b.about}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=b.timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = 1
            print(f"error: {name} ran over its {b.timeout_s} s bound and was stopped", file=sys.stderr)
        outcome = {0: "goals met", 3: "a goal not met", 4: "a goal undecided"}.get(rc, f"failed (exit {rc})")
        summary.append(f"{name:<10} {time.monotonic() - t0:6.0f} s  {outcome}")
        worst = max(worst, {0: 0, 4: 1, 3: 2}.get(rc, 3))
    print(f"== {len(names)} benchmark(s) in {time.monotonic() - started:.0f} s")
    for line in summary:
        print(f"   {line}")
    return [0, 4, 3, 1][worst]


if __name__ == "__main__":
    sys.exit(main())
