"""python -m reports: a Locust run's output → the P95 decision table.

Commands
  decide PREFIX [--out DIR] [thresholds…]   verdict, decision.md/json, report.html
  compare RUN_A RUN_B [--out DIR]           the same table for two runs, with significance
                                            (RUN: a PREFIX as above, or a report folder of `decide`)
  diagnose [--workload F] [--samples N] [--run PREFIX] [--out DIR]
                                            plans of the Supabase lookups, findings and fixes (diagnosis.json)

PREFIX is Locust's --csv prefix (``runs/x/run`` for ``runs/x/run_stats.csv``),
a ``*_stats.csv`` path, or a directory holding one run.

Output directory (decide): ``--out DIR``, default ``reports/out/<prefix name>-<UTC time>/``
under the current directory (git-ignored).

Exit codes
   0  GO: migrate to Convex
  10  OPTIMISE SUPABASE
  11  INCONCLUSIVE (thin evidence, a straddling interval, or Convex 20–50 % faster)
   3  with --strict: the run cannot decide (a target failed beyond the ceiling, data differs
      between the backends): the report is written, its verdict INCONCLUSIVE
   2  bad input or usage (one line on stderr naming the file and row)
   1  unexpected internal error
``compare`` exits 0 when both runs were read, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.load import BadInput, Run, load_run
from reports.rules import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERNAL_ERROR,
    EXIT_RUN_CANNOT_DECIDE,
    Decision,
    Thresholds,
    add_threshold_arguments,
    decide_all,
    primary,
)

EPILOG = (
    "exit codes: 0 GO · 10 OPTIMISE SUPABASE · 11 INCONCLUSIVE · 3 run cannot decide (--strict) · 2 bad input · 1 internal error"
    "\n(compare: 0 or 2)"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors: one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_thresholds(p: argparse.ArgumentParser) -> None:
    d = Thresholds()
    add_threshold_arguments(p.add_argument, suffix=" (default %(default)s)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds excluded at the start; default: the HDR artifact's warmup_s, else 0. "
                        "HDR histograms already exclude the harness's warm-up; this applies to CSV-derived data")
    p.add_argument("--require-ci", action="store_true", help="INCONCLUSIVE unless a bootstrap CI (HDR histograms) is available")
    p.add_argument("--resamples", type=int, default=d.resamples, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="bootstrap seed (default %(default)s)")


def _thresholds(args: argparse.Namespace) -> Thresholds:
    th = Thresholds(
        p95_target_ms=args.p95_target_ms, min_speedup=args.min_speedup, equivalence=args.equivalence,
        min_samples=args.min_samples, max_failure_ratio=args.max_failure_ratio,
        resamples=args.resamples, seed=args.seed, require_ci=args.require_ci,
    )
    try:
        th.validate()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if args.warmup is not None and args.warmup < 0:
        raise BadInput(f"--warmup must be >= 0, got {args.warmup}")
    return th


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m reports", description="Locust run output → P95 decision table.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("decide", help="verdict for one run", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("prefix", metavar="PREFIX", help="Locust --csv prefix, a *_stats.csv path, or a run directory")
    d.add_argument("--out", type=Path, default=None, help="output directory (default reports/out/<prefix>-<UTC time>/)")
    d.add_argument("--no-charts", action="store_true", help="skip the charts in report.html (faster)")
    d.add_argument("--strict", action="store_true",
                   help="exit 3 (not 11) when the run cannot decide: a target failing beyond the ceiling, "
                        "data that differs between the backends")
    d.add_argument("--hdr", type=Path, default=None,
                   help="the harness's HDR artifact, when written away from the CSVs (default PREFIX_hdr.json)")
    _add_thresholds(d)
    c = sub.add_parser("compare", help="two runs side by side", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    c.add_argument("--out", type=Path, default=None, help="also write compare.md and compare.json here")
    _add_thresholds(c)
    from reports.diagnose.cli import add_parser as add_diagnose

    add_diagnose(sub)
    return parser


SEVERITY_ORDER = {"critical": 0, "high": 1, "warning": 2, "medium": 2, "low": 3, "info": 4}


def load_findings(out: Path) -> list[dict[str, Any]]:
    """The findings of ``python -m reports diagnose`` run into the same folder, worst first (none without it)."""
    path = out / "diagnosis.json"
    if not path.is_file():
        return []
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("findings") or []
    except (OSError, ValueError, AttributeError):
        raise BadInput(f"{path}: not a diagnosis.json of `python -m reports diagnose`") from None
    items = [f for f in found if isinstance(f, dict)]
    return sorted(items, key=lambda f: SEVERITY_ORDER.get(str(f.get("severity", "")).lower(), 5))


def _default_out(run: Run) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / "out" / f"{run.prefix.name}-{stamp}"


def cmd_decide(args: argparse.Namespace) -> int:
    th = _thresholds(args)
    run = load_run(args.prefix, args.warmup, args.hdr)
    decisions = decide_all(run.targets, th, run.problems)
    from reports import render

    out = args.out or _default_out(run)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{out}: cannot create output directory ({exc.strerror})") from None
    charts = []
    if not args.no_charts:
        from reports.charts import all_charts

        charts = all_charts(run, th.p95_target_ms)
    findings = load_findings(out)
    (out / "decision.md").write_text(render.to_markdown(run, decisions, findings), encoding="utf-8")
    (out / "decision.json").write_text(json.dumps(render.to_json(run, decisions), indent=2, default=str, allow_nan=False) + "\n",
                                       encoding="utf-8")
    (out / "report.html").write_text(render.to_html(run, decisions, charts, findings), encoding="utf-8")
    try:
        sys.stdout.write(render.to_text(run, decisions, findings))
        sys.stdout.write(f"wrote {out}/decision.md, decision.json, report.html\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # e.g. piped into `head`: the files are written and the verdict stands
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    main = primary(decisions)
    if args.strict and main.run_problems:
        sys.stderr.write(f"reports: the run cannot decide: {'; '.join(main.run_problems)}\n")
        return EXIT_RUN_CANNOT_DECIDE
    return EXIT_CODES[main.verdict]


def cmd_compare(args: argparse.Namespace) -> int:
    from reports import compare, render

    th = _thresholds(args)
    run_a = load_run(args.run_a, args.warmup)
    run_b = load_run(args.run_b, args.warmup)
    da: dict[str, Decision] = decide_all(run_a.targets, th, run_a.problems)
    db: dict[str, Decision] = decide_all(run_b.targets, th, run_b.problems)
    changes = compare.compare_targets(run_a.targets, run_b.targets, th)
    table = render._text_table(compare.HEADER, compare.rows(changes))
    lines = [
        f"A: {run_a.prefix} ({run_a.source}) verdict {primary(da).verdict.value}; {render.network_line(run_a)}",
        f"B: {run_b.prefix} ({run_b.source}) verdict {primary(db).verdict.value}; {render.network_line(run_b)}",
        *(["SANDBOX RUN: " + render.SANDBOX_BANNER + "."] if run_a.sandbox or run_b.sandbox else []),
        table,
        "significance: bootstrap 95% CI of P95 B/A excludes 1; 'not significant (n.s.)' otherwise; "
        f"'too few samples' under --min-samples ({th.min_samples}) in either run; "
        "'unknown (CSV only)' without HDR histograms in both runs.",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"{args.out}: cannot create output directory ({exc.strerror})") from None
        md = "\n".join(["# Run comparison\n",
                        f"- A: `{run_a.prefix}` ({run_a.source}), verdict **{primary(da).verdict.value}**; "
                        f"{render.network_line(run_a)}",
                        f"- B: `{run_b.prefix}` ({run_b.source}), verdict **{primary(db).verdict.value}**; "
                        f"{render.network_line(run_b)}\n",
                        render._md_table(compare.HEADER, compare.rows(changes)), "", lines[-1], ""])
        (args.out / "compare.md").write_text(md, encoding="utf-8")
        (args.out / "compare.json").write_text(
            json.dumps(render.finite(compare.to_json(run_a, run_b, da, db, changes)), indent=2, allow_nan=False) + "\n",
            encoding="utf-8",
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "diagnose":
            from reports.diagnose.cli import cmd_diagnose

            return cmd_diagnose(args)
        return cmd_decide(args) if args.command == "decide" else cmd_compare(args)
    except BadInput as exc:
        sys.stderr.write(f"reports: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not the user's input: still one line
        sys.stderr.write(f"reports: internal error: {exc.__class__.__name__}: {exc}\n")
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
