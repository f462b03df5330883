"""``python -m reports decide`` on a synthetic 2-hour run with 7 targets: pandas against the previous reader.

    .venv/bin/python -m bench.bench_decide [--pairs 10] [--hours 2] [--rps 40] [--cases hdr-charts] [--write-docs]

Writes, in a temporary directory, what a 2-hour run at 1-second resolution
leaves behind: ``run_stats.csv``, ``run_stats_history.csv`` (as with
``--csv-full-history``: a row per second for every lookup, lookup-miss and HTTP
row plus Aggregated), ``run_failures.csv`` and ``run_hdr.json`` (7 HDR
histograms).  Then runs ``decide`` in a fresh process per run, as interleaved
pairs: the reader of today (pandas) and the previous one (the ``csv`` module,
streamed into ``array``s; still in ``reports/load.py`` as the row-by-row reader
that words exact errors, put in place of the pandas reader for its runs).  Per
pair: wall time and the process's peak RSS; goals: pandas / previous <= 1.5 for
both, median with its 95 % interval.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs

ROOT = Path(__file__).resolve().parents[1]
NAME = "decide"
HEADING = "## Reports"
TIME_GOAL = pairs.Goal("pandas/previous time", 1.5, at_least=False)
MEMORY_GOAL = pairs.Goal("pandas/previous peak RSS", 1.5, at_least=False)
CASES = {"hdr-charts": "HDR + charts", "hdr-no-charts": "HDR, --no-charts", "csv-charts": "CSV only + charts"}
READERS: dict[pairs.Side, str] = {"a": "pandas", "b": "previous"}
# ``python -m reports`` with the reader of the run: "previous" puts the row-by-row reader in place
RUN_REPORTS = (
    "import runpy, sys\n"
    "import reports.load as load\n"
    "if sys.argv[1] == 'previous':\n"
    "    load.read_stats, load.read_history, load.read_failures = "
    "load._exact_stats, load._exact_history, load._exact_failures\n"
    "sys.argv = ['reports', *sys.argv[2:]]\n"
    "runpy.run_module('reports', run_name='__main__', alter_sys=True)\n"
)
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[2:]], stdout=subprocess.DEVNULL).returncode\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
)
PCT = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_HEADER = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s", *PCT]
HISTORY_HEADER = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PCT, "Total Request Count",
                  "Total Failure Count", "Total Median Response Time", "Total Average Response Time",
                  "Total Min Response Time", "Total Max Response Time", "Total Average Content Size"]
# target id -> (median ms, HTTP rows)
TARGETS: dict[str, tuple[float, list[tuple[str, str]]]] = {
    "supabase_rest": (400, [("GET", "contacts"), ("GET", "conversations"), ("GET", "messages"), ("GET", "notes")]),
    "supabase_nested": (180, [("GET", "contacts")]),
    "supabase_rpc": (150, [("POST", "rpc/get_contact_context")]),
    "convex_http": (90, [("GET", "contacts/by-phone")]),
    "convex_query": (80, [("POST", "contacts:getContextByPhone")]),
    "api_supabase": (450, [("GET", "api/contacts/by-phone")]),
    "api_convex": (110, [("GET", "api/contacts/by-phone-convex")]),
}


def make_run(directory: Path, hours: float, rps: float) -> Path:
    rng = np.random.default_rng(1)
    seconds = int(hours * 3600)
    start = 1_795_000_000
    prefix = directory / "run"
    rows: list[tuple[str, str, float]] = []  # (Type, Name, median ms)
    for tid, (median, calls) in TARGETS.items():
        rows.append(("lookup", tid, median))
        rows.append(("lookup-miss", tid, median * 0.8))
        rows += [(method, f"{tid} {what}", median / len(calls)) for method, what in calls]
    pct = [f"{m * f:.0f}" for m in (100,) for f in (1, 1.1, 1.2, 1.3, 1.5, 1.8, 2, 2.2, 3, 4, 5)]
    with open(f"{prefix}_stats_history.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HISTORY_HEADER)
        for s in range(seconds):
            for rtype, name, median in rows:
                total = int(rps * (s + 1))
                w.writerow([start + s, 140, rtype, name, f"{rps:.6f}", "0.000000",
                            *[f"{median * f:.0f}" for f in (1, 1.1, 1.2, 1.3, 1.5, 1.8, 2, 2.2, 3, 4, 5)],
                            total, 0, f"{median:.0f}", f"{median * 1.1:.4f}", f"{median / 3:.4f}", f"{median * 5:.4f}", 512])
            w.writerow([start + s, 140, "", "Aggregated", f"{rps * len(rows):.6f}", "0.000000", *pct,
                        int(rps * len(rows) * (s + 1)), 0, 100, 110.0, 5.0, 2000.0, 512])
    with open(f"{prefix}_stats.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(STATS_HEADER)
        n = int(rps * seconds)
        for rtype, name, median in rows:
            w.writerow([rtype, name, n, 0, median, median * 1.1, median / 3, median * 5, 512, rps, 0.0,
                        *[f"{median * f:.0f}" for f in (1, 1.1, 1.2, 1.3, 1.5, 1.8, 2, 2.2, 3, 4, 5)]])
        w.writerow(["", "Aggregated", n * len(rows), 0, 100, 110, 5, 2000, 512, rps * len(rows), 0.0, *pct])
    Path(f"{prefix}_failures.csv").write_text("Method,Name,Error,Occurrences,First Seen,Last Seen\n")
    entries = []
    n = int(rps * seconds)
    for tid, (median, _) in TARGETS.items():
        hist = HdrHistogram(1, 3_600_000_000, 3)
        values, counts = np.unique(np.round(rng.lognormal(np.log(median * 1000), 0.45, n)).astype(np.int64),
                                   return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            hist.record_value(max(1, v), c)
        entries.append({"type": "lookup", "name": tid, "step": None, "count": n, "failures": 0, "unit": "us",
                        "min": hist.get_min_value(), "max": hist.get_max_value(), "hdr": hist.encode().decode()})
    meta = {"started_at": "2026-11-18T08:53:20Z", "ended_at": "2026-11-18T10:53:20Z", "locust_version": "2.47.0",
            "python_version": "3.11.7", "sandbox": True, "warmup_s": 10, "steps": [], "workers": 2,
            "targets": {t: {"host": "http://127.0.0.1:54321", "level": "api" if t.startswith("api") else "direct",
                            "round_trips": 4 if t == "supabase_rest" else 1} for t in TARGETS},
            "settings": {"users": 140, "spawn_rate": 10, "run_time": seconds, "open_model_rate": None,
                         "distinct_keys": False}}
    Path(f"{prefix}_hdr.json").write_text(json.dumps({"format": "crm-latency-hdr/1", "metadata": meta, "entries": entries}))
    return prefix


def measure(reader: str, args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``python -m reports`` process using ``reader``."""
    out = subprocess.run([sys.executable, "-c", MEASURE, RUN_REPORTS, reader, *args], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=600)
    seconds, rss_kib, rc = out.stdout.split()
    if int(rc) not in (0, 10, 11):  # decide's verdict exit codes
        raise SystemExit(f"error: reports decide with the {reader} reader exited {rc}")
    return float(seconds), int(rss_kib) / 1024


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--rps", type=float, default=40.0, help="lookups/s per target")
    parser.add_argument("--cases", default="hdr-charts",
                        help=f"comma-separated, of: {', '.join(CASES)} (or all; default hdr-charts)")
    pairs.add_arguments(parser)
    opts = parser.parse_args(argv)
    cases = list(CASES) if opts.cases == "all" else opts.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    mach = pairs.machine()
    comparisons: list[pairs.Comparison] = []
    with tempfile.TemporaryDirectory() as tmp, pairs.LoadMonitor() as load:
        t0 = time.perf_counter()
        prefix = make_run(Path(tmp), opts.hours, opts.rps)
        made = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in Path(tmp).iterdir()}
        history_rows = Path(f"{prefix}_stats_history.csv").read_bytes().count(b"\n") - 1
        described = (f"{opts.hours:g} h, 7 targets, {history_rows:,} history rows "
                     f"({sizes['run_stats_history.csv'] / 2**20:.1f} MiB), HDR JSON {sizes['run_hdr.json'] / 2**10:.0f} KiB, "
                     f"{int(opts.rps * opts.hours * 3600):,} samples/target")
        print(f"synthetic run: {described}; made in {made:.1f} s", flush=True)
        csv_only = Path(tmp) / "csv"
        csv_only.mkdir()
        for name in ("run_stats.csv", "run_stats_history.csv", "run_failures.csv"):
            (csv_only / name).symlink_to(Path(tmp) / name)
        arguments = {"hdr-charts": [str(prefix)], "hdr-no-charts": [str(prefix), "--no-charts"],
                     "csv-charts": [str(csv_only / "run")]}
        for case in cases:
            out = str(Path(tmp) / "out" / case)

            def one(side: pairs.Side, _i: int, case: str = case, out: str = out) -> tuple[float, float]:
                return measure(READERS[side], ["decide", *arguments[case], "--out", out])

            def progress(i: int, a: tuple[float, float], b: tuple[float, float], case: str = case) -> None:
                print(f"  {case} pair {i + 1:>2}: pandas {a[0]:5.2f} s {a[1]:4.0f} MiB, previous {b[0]:5.2f} s "
                      f"{b[1]:4.0f} MiB (load {os.getloadavg()[0]:.2f})", flush=True)

            got_a, got_b = pairs.run_pairs(opts.pairs, one, progress=progress)
            comparisons.append(pairs.Comparison(f"{CASES[case]}: time", "pandas", "previous", [r[0] for r in got_a],
                                                [r[0] for r in got_b], unit="s", goal=TIME_GOAL, spec=".2f"))
            comparisons.append(pairs.Comparison(f"{CASES[case]}: peak RSS", "pandas", "previous", [r[1] for r in got_a],
                                                [r[1] for r in got_b], unit="MiB", goal=MEMORY_GOAL))
    table = pairs.summary_table(comparisons)
    print(table)
    for line in pairs.verdict_lines(comparisons):
        print(line)
    print(f"{load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_decide", argv)
    if opts.json:
        pairs.write_json(opts.json, NAME, comparisons, mach, load, command, {"dataset": described})
    if opts.write_docs:
        body = (
            f"{pairs.header_lines(command, mach, load, opts.pairs)}  \n"
            f"Dataset: {described}. Each run is a fresh process; peak RSS is its `ru_maxrss`.\n\n"
            f"{table}\n\n" + "\n".join(f"- {line}" for line in pairs.verdict_lines(comparisons))
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code(comparisons)


if __name__ == "__main__":
    sys.exit(main())
