"""The live verdict: the merged HDR histograms through ``reports.rules`` (the one rules module)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from harness.contracts import decision_level
from reports.rules import EXIT_CODES, Decision, Thresholds, Verdict, decide_all, target_from_histogram

if TYPE_CHECKING:
    from harness.runtime import Harness


def thresholds(h: Harness) -> Thresholds:
    return h.options.thresholds


def compute(h: Harness) -> dict[str, Decision]:
    elapsed = None
    if h.started_at is not None:
        from datetime import UTC, datetime

        end = h.ended_at or datetime.now(UTC)
        elapsed = max((end - h.started_at).total_seconds() - h.options.warmup, 1e-9)
    stats = {}
    for t in h.options.targets:
        e = h.recorder.get("lookup", t)
        if e is None:
            continue
        rps = e.count / elapsed if elapsed else None
        others = [o for rtype in ("lookup-miss", "write") if (o := h.recorder.get(rtype, t)) is not None]
        stats[t] = target_from_histogram(
            t, e.hist, failures=e.failures, rps=rps,
            other_requests=sum(o.count + o.failures for o in others), other_failures=sum(o.failures for o in others),
        )
    return decide_all(stats, thresholds(h), run_problems(h))


def run_problems(h: Harness) -> list[str]:
    """What forbids a GO or OPTIMISE SUPABASE verdict: data that differs, a saturated load generator."""
    problems = []
    parity = h.data_parity or {}
    if parity.get("status") == "mismatch":
        problems.append("data differs between Supabase and Convex (run with --allow-data-mismatch)")
    if h.started_at is not None:
        from reports.timing import cpu_in_window, saturation_lines

        lo = h.started_at.timestamp() + h.options.warmup
        hi = h.ended_at.timestamp() if h.ended_at is not None else math.inf
        problems += saturation_lines(cpu_in_window(h.cpu_summary(), lo, hi))
    return problems


def exit_code(decisions: dict[str, Decision], targets: tuple[str, ...]) -> int:
    """The direct-level verdict decides; the API level when only API routes were measured."""
    d = decisions.get(decision_level(targets))
    return d.exit_code if d is not None else EXIT_CODES[Verdict.INCONCLUSIVE]


def payload(h: Harness) -> dict[str, Any]:
    decisions = compute(h)
    return {
        "decisions": {level: d.to_dict() for level, d in decisions.items()},
        "exit_code": exit_code(decisions, h.options.targets),
        "open_model": h.pacer_summary() if h.options.open_rate else None,
        "warmup_s": h.options.warmup,
        "sandbox": h.sandbox,
    }


def table_rows(h: Harness) -> list[dict[str, Any]]:
    """Rows for the web UI's Decision tab (keys: item, subject, value, threshold, status)."""
    decisions = compute(h)
    rows: list[dict[str, Any]] = []
    for level, d in decisions.items():
        rows.append({"item": f"VERDICT ({level})", "subject": d.convex or "-", "value": d.verdict.value,
                     "threshold": f"exit code {d.exit_code}", "status": d.reason})
        for t in d.targets:
            p = "n/a" if t.p95_ms is None else f"{t.p95_ms:.1f} ms"
            p99 = "n/a" if t.p99_ms is None else f"{t.p99_ms:.1f} ms"
            rows.append({"item": "P95 / P99", "subject": t.target, "value": f"{p} / {p99}",
                         "threshold": f"n={t.count}, failures={t.failures}",
                         "status": "; ".join(d.evidence.get(t.target, ())) or "ok"})
        for c in d.criteria:
            rows.append({"item": c.name, "subject": c.subject, "value": c.value, "threshold": c.threshold,
                         "status": c.status})
        if d.second_finding is not None:
            rows.append({"item": "second finding", "subject": d.second_finding.optimised or "-",
                         "value": d.second_finding.outcome, "threshold": "", "status": d.second_finding.text})
    pacers = h.pacer_summary() if h.options.open_rate else {}
    for tid, counts in pacers.items():
        rows.append({"item": "open model", "subject": tid, "value": f"late {counts['late']}, dropped {counts['dropped']}",
                     "threshold": f"started {counts['started']} of {counts['scheduled']}",
                     "status": f"max lateness {counts['max_late_ms']:.0f} ms"})
    return rows
