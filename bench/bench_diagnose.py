"""``python -m reports diagnose`` on the 10k-contact dataset with 20 samples: a check, under 30 s.

Runs on the sandbox (``bench.pairs.sandbox``: a developer's running stack, else
one of its own under the shared lock, stopped at the end). The dataset is the
seed's, in workspaces of its own (``python -m seed generate --contacts 10000
--seed 9101``: nothing else touched), its phones exported with ``python -m seed
workload --workspace …``.

Three configurations, interleaved run by run (A B C, A B C, …) so background
load hits all three, each a fresh ``python -m reports diagnose`` process timed
from start to exit, as a user runs it:

* Data API + DATABASE_URL: plans from PostgREST's plan media type; the catalog
  checks and the RPC's own statement through the database;
* Data API only: plans, no catalog checks;
* DATABASE_URL only: EXPLAIN of PostgREST's statements, as when plans are off.

Usage: ``python -m bench.bench_diagnose [--runs 5] [--samples 20] [--write-docs] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import pairs

NAME = "diagnose"
HEADING = "## reports diagnose"
ROOT = Path(__file__).resolve().parents[1]
CONTACTS = 10_000
SEED = 9101
GOAL = pairs.Goal("seconds per run", 30.0, at_least=False)
# configuration -> (label, --via, with DATABASE_URL)
CONFIGS = {
    "auto": ("Data API + DATABASE_URL", "auto", True),
    "postgrest": ("Data API only", "postgrest", False),
    "database": ("DATABASE_URL only", "database", True),
}


def _env(sandbox_env: dict[str, str], database: bool) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    names = ["SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SANDBOX_DIR"]
    names += ["DATABASE_URL"] if database else []
    return {**keep, "PYTHONPATH": str(ROOT), **{k: sandbox_env[k] for k in names if sandbox_env.get(k)}}


def seed(sandbox_env: dict[str, str], work: Path) -> tuple[Path, dict[str, int]]:
    """The dataset in its own workspaces, and its workload file."""
    from seed.generate import generate

    env = _env(sandbox_env, True)
    subprocess.run([sys.executable, "-m", "seed", "-q", "generate", "--contacts", str(CONTACTS), "--seed", str(SEED)],
                   cwd=work, env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)
    data = generate(CONTACTS, SEED)
    workload = work / "workload.json"
    args = [a for ws in data.workspaces for a in ("--workspace", ws["id"])]
    subprocess.run([sys.executable, "-m", "seed", "-q", "workload", "--out", str(workload), *args],
                   cwd=work, env=env, check=True, timeout=300, stdout=subprocess.DEVNULL)
    return workload, {name: len(rows) for name, rows in data.rows.items()}


def one_run(sandbox_env: dict[str, str], work: Path, workload: Path, config: str, samples: int,
            i: int) -> tuple[float, dict[str, Any]] | None:
    """(wall seconds, diagnosis.json) of one fresh process; None when the sandbox does not serve plans."""
    _, via, database = CONFIGS[config]
    out = work / f"diagnose-{config}-{i}"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reports", "diagnose", "--workload", str(workload), "--samples", str(samples),
         "--via", via, "--out", str(out)],
        cwd=work, env=_env(sandbox_env, database), capture_output=True, text=True, timeout=300, check=False,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        if "not enabled" in proc.stderr:
            return None
        raise SystemExit(f"error: diagnose ({CONFIGS[config][0]}) failed: {proc.stderr.strip()}")
    return seconds, json.loads((out / "diagnosis.json").read_text())


def details(docs: dict[str, dict[str, Any]]) -> str:
    lines = ["| configuration | plans via | statements | findings | slowest statement (median execution) |",
             "|---|---|---:|---:|---|"]
    for config, doc in docs.items():
        slow = max(doc["statements"], key=lambda s: s["execution_ms"]["median"] or 0)
        ways = " + ".join(sorted({s["via"] for s in doc["statements"]}))
        lines.append(f"| {CONFIGS[config][0]} | {ways} | {len(doc['statements'])} | {len(doc['findings'])} | "
                     f"{slow['name']} ({slow['execution_ms']['median']:.2f} ms) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5, help="runs per configuration (default 5)")
    ap.add_argument("--samples", type=int, default=20, help="sampled phones (default 20)")
    ap.add_argument("--write-docs", action="store_true", help="rewrite this benchmark's block of docs/benchmarks.md")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results, with metadata, as JSON")
    ap.add_argument("--pairs", type=int, help=argparse.SUPPRESS)  # `python -m bench --pairs`: not paired, ignored
    args = ap.parse_args(argv)
    mach = pairs.machine()
    seconds: dict[str, list[float]] = {c: [] for c in CONFIGS}
    docs: dict[str, dict[str, Any]] = {}
    offered = dict.fromkeys(CONFIGS, True)
    with pairs.sandbox(["postgres", "supabase"]) as env, tempfile.TemporaryDirectory(prefix="bench-diagnose-") as tmp, \
            pairs.LoadMonitor() as load:
        work = Path(tmp)
        workload, rows = seed(env, work)
        print(f"diagnose: {CONTACTS:,} contacts, {args.samples} samples, {args.runs} runs per configuration", flush=True)
        for i in range(args.runs):
            for config in CONFIGS:
                if not offered[config]:
                    continue
                got = one_run(env, work, workload, config, args.samples, i)
                if got is None:
                    offered[config] = False
                    continue
                seconds[config].append(got[0])
                docs[config] = got[1]
                print(f"  run {i + 1}, {CONFIGS[config][0]}: {got[0]:.2f} s", flush=True)
    checks = [pairs.Check(f"{CONFIGS[c][0]}: seconds per run", v, unit="s", goal=GOAL)
              for c, v in seconds.items() if v]
    table = pairs.checks_table(checks)
    missing = [f"{CONFIGS[c][0]}: the sandbox's gateway does not serve plans (406 PGRST107)"
               for c, ok in offered.items() if not ok]
    print(table)
    print(details(docs))
    for line in pairs.verdict_lines(checks) + missing:
        print(line)
    print(f"{load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_diagnose", argv)
    if args.json:
        pairs.write_json(args.json, NAME, checks, mach, load, command,
                         {"seconds": seconds, "rows": rows, "samples": args.samples})
    if args.write_docs:
        data = ", ".join(f"{n:,} {t}" for t, n in rows.items())
        body = (
            f"Command: `{command}` ({args.runs} runs per configuration, interleaved; {args.samples} sampled phones)  \n"
            f"Machine: {mach.label()}; {load.label()}.  \n"
            f"Data: {data} (the seed's, seed {SEED}); the sandbox on 127.0.0.1.\n\n"
            f"{table}\n\n{details(docs)}\n\n"
            + "\n".join(f"- {line}" for line in pairs.verdict_lines(checks) + missing)
            + f"\n- median of all runs: {statistics.median([s for v in seconds.values() for s in v]):.2f} s"
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())
