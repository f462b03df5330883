"""Compare two runs (before / after an optimisation), target by target.

A P95 change is *significant* when the bootstrap 95 % CI of the ratio
P95_B / P95_A excludes 1.  That needs HDR histograms in both runs; with CSV
percentiles only, the change is reported but its significance is "unknown".
A target with fewer than ``min_samples`` successful lookups in either run is
"too few samples", whatever its interval says: a P95 from a handful of
samples is not a measurement to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.contracts import TARGETS
from reports.load import Run
from reports.rules import Decision, TargetStats, Thresholds, p95_ratio, primary
from reports.stats import Interval


class Significance(StrEnum):
    SIGNIFICANT = "significant"
    NOT_SIGNIFICANT = "not significant"
    TOO_FEW_SAMPLES = "too few samples"
    UNKNOWN = "unknown (CSV only)"
    NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Change:
    target: str
    a: TargetStats | None
    b: TargetStats | None
    ratio: Interval | None  # P95 B / P95 A
    significance: Significance

    @property
    def delta(self) -> float | None:
        return None if self.ratio is None else self.ratio.estimate - 1


def compare_targets(a: dict[str, TargetStats], b: dict[str, TargetStats], th: Thresholds) -> list[Change]:
    out = []
    for target in [t for t in TARGETS if t in a or t in b]:
        ta, tb = a.get(target), b.get(target)
        if ta is None or tb is None or ta.p95_ms is None or tb.p95_ms is None or ta.p95_ms == 0:
            out.append(Change(target, ta, tb, None, Significance.NOT_APPLICABLE))
            continue
        iv = p95_ratio(tb, ta, th)
        if min(ta.count, tb.count) < th.min_samples:
            significance = Significance.TOO_FEW_SAMPLES
        elif iv.method != "bootstrap":
            significance = Significance.UNKNOWN
        elif iv.low > 1 or iv.high < 1:
            significance = Significance.SIGNIFICANT
        else:
            significance = Significance.NOT_SIGNIFICANT
        out.append(Change(target, ta, tb, iv, significance))
    return out


def _ms(t: TargetStats | None, attr: str) -> str:
    v = getattr(t, attr) if t is not None else None
    return "n/a" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.1f}")


HEADER = ["target", "P50 A", "P50 B", "P95 A", "P95 B", "P99 A", "P99 B", "req/s A", "req/s B", "fail% A", "fail% B",
          "samples A", "samples B", "P95 change [95% CI]", "significance"]


def _rps(t: TargetStats | None) -> str:
    return "n/a" if t is None or t.rps is None else f"{t.rps:.1f}"


def _fail(t: TargetStats | None) -> str:
    return "n/a" if t is None else f"{t.failure_ratio:.2%}"


def rows(changes: list[Change]) -> list[list[str]]:
    out = []
    for c in changes:
        change = "n/a"
        if c.ratio is not None:
            change = f"{c.ratio.estimate - 1:+.1%} [{c.ratio.low - 1:+.1%}, {c.ratio.high - 1:+.1%}]"
        sig = "not significant (n.s.)" if c.significance is Significance.NOT_SIGNIFICANT else c.significance.value
        out.append([
            c.target, _ms(c.a, "p50_ms"), _ms(c.b, "p50_ms"), _ms(c.a, "p95_ms"), _ms(c.b, "p95_ms"),
            _ms(c.a, "p99_ms"), _ms(c.b, "p99_ms"), _rps(c.a), _rps(c.b), _fail(c.a), _fail(c.b),
            str(c.a.count) if c.a else "n/a",
            str(c.b.count) if c.b else "n/a", change, sig,
        ])
    return out


def to_json(run_a: Run, run_b: Run, da: dict[str, Decision], db: dict[str, Decision],
            changes: list[Change]) -> dict[str, Any]:
    return {
        "format": "crm-latency-compare/1",
        "a": {"prefix": str(run_a.prefix), "source": run_a.source, "verdict": primary(da).verdict.value},
        "b": {"prefix": str(run_b.prefix), "source": run_b.source, "verdict": primary(db).verdict.value},
        "changes": [
            {"target": c.target, "p95_a_ms": c.a.p95_ms if c.a else None, "p95_b_ms": c.b.p95_ms if c.b else None,
             "ratio": c.ratio.to_dict() if c.ratio else None, "significance": c.significance}
            for c in changes
        ],
    }
