"""The Node benchmarks (``bench/*.mjs``) with the same statistics as the Python ones.

    .venv/bin/python -m bench.node convex|realtime [--pairs N] [--write-docs] [--json FILE] [-- node options]

Runs the script with ``--pairs`` and ``--json``; the script measures its pairs
(interleaved, A B, B A, ...) and writes their values; this turns them into
ratios with their 95 % intervals, checks and verdicts, prints the table and,
with ``--write-docs``, rewrites the benchmark's block of ``docs/benchmarks.md``.
Scripts that start a sandbox service on the fixed ports run under the shared lock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class NodeBench:
    script: str
    heading: str
    #: starts a sandbox service on the fixed ports
    locks_sandbox: bool


BENCHES = {
    "convex": NodeBench("bench/bench_convex.mjs", "## Convex runtime", locks_sandbox=False),
    "realtime": NodeBench("bench/bench_realtime.mjs", "## Realtime", locks_sandbox=True),
}


def _goal(spec: dict[str, Any] | None) -> pairs.Goal | None:
    if not spec:
        return None
    return pairs.Goal(spec["label"], float(spec["threshold"]), bool(spec.get("at_least", True)))


def results(doc: dict[str, Any]) -> tuple[list[pairs.Comparison], list[pairs.Check]]:
    comps = [
        pairs.Comparison(c["name"], c["a_label"], c["b_label"], [float(x) for x in c["a"]], [float(x) for x in c["b"]],
                         unit=c.get("unit", ""), kind=c.get("kind", "ratio"), goal=_goal(c.get("goal")),
                         spec=c.get("spec", ".0f"), estimate_label=c.get("estimate_label", ""))
        for c in doc.get("comparisons", [])
    ]
    checks = [
        pairs.Check(c["name"], [float(x) for x in c["values"]], unit=c.get("unit", ""), goal=_goal(c.get("goal")),
                    spec=c.get("spec", ".2f"))
        for c in doc.get("checks", [])
    ]
    return comps, checks


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m bench.node", description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(BENCHES))
    pairs.add_arguments(ap)
    # the script's own options come after "--"
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    extra = argv[cut + 1:]
    bench = BENCHES[args.name]
    mach = pairs.machine()
    with tempfile.TemporaryDirectory() as tmp, pairs.LoadMonitor() as load:
        out = Path(tmp) / "pairs.json"
        cmd = ["node", str(ROOT / bench.script), "--pairs", str(args.pairs), "--json", str(out), *extra]
        with pairs.sandbox_lock() if bench.locks_sandbox else nullcontext():
            rc = subprocess.run(cmd, cwd=ROOT, timeout=1800).returncode
        if rc != 0 or not out.exists():
            print(f"error: {bench.script} failed (exit {rc})", file=sys.stderr)
            return 1
        doc = json.loads(out.read_text())
    comps, checks = results(doc)
    parts = []
    if comps:
        parts.append(pairs.summary_table(comps))
    if checks:
        parts.append(pairs.checks_table(checks, runs_label="rounds"))
    if doc.get("markdown"):
        parts.append(str(doc["markdown"]))
    decided: list[pairs.Comparison | pairs.Check] = [*comps, *checks]
    lines = [*pairs.verdict_lines(decided), *doc.get("notes", [])]
    for part in parts:
        print(part)
    for line in lines:
        print(line)
    print(f"{load.label()}; machine: {mach.label()}")
    command = " ".join([".venv/bin/python -m bench.node", args.name,
                        *(["--pairs", str(args.pairs)] if args.pairs != pairs.DEFAULT_PAIRS else []),
                        *(["--", *extra] if extra else [])])
    if args.json:
        pairs.write_json(args.json, args.name, decided, mach, load, command, {"node": doc})
    if args.write_docs:
        body = (f"{pairs.header_lines(command, mach, load, int(doc.get('pairs', args.pairs)))}  \n{doc.get('setup', '')}\n\n"
                + "\n\n".join(parts) + "\n\n" + "\n".join(f"- {line}" for line in lines))
        pairs.write_docs(args.name, body, bench.heading)
    return pairs.exit_code(decided)


if __name__ == "__main__":
    sys.exit(main())
