"""The verdict rules at and around every threshold."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.rules import (
    EXIT_CODES,
    TargetStats,
    Thresholds,
    Verdict,
    decide,
    decide_all,
    target_from_distribution,
    target_from_histogram,
)
from reports.stats import Distribution

N = 2000


def point(target: str, ms: float, n: int = N, failures: int = 0) -> TargetStats:
    """Every sample at ``ms``: percentiles and all bootstrap replicates are exactly ``ms``."""
    return target_from_distribution(target, Distribution((ms,), (n,)), failures=failures, source="samples")


def lognormal(target: str, median: float, n: int, seed: int, sigma: float = 0.4) -> TargetStats:
    rng = random.Random(seed)
    dist = Distribution.from_samples(round(rng.lognormvariate(math.log(median), sigma), 2) for _ in range(n))
    return target_from_distribution(target, dist)


def csv_target(target: str, p95: float, count: int = N, failures: int = 0) -> TargetStats:
    return TargetStats(target, p95 / 2, p95, p95 * 1.2, count=count, failures=failures, source="csv")


def run(*targets: TargetStats, **th: float) -> Verdict:
    return decide(list(targets), Thresholds(**th)).verdict  # type: ignore[arg-type]


# ---------------------------------------------------------------- speed-up boundary (ratio <= 0.5)

def test_go_when_ratio_exactly_at_min_speedup() -> None:
    assert run(point("supabase_rest", 800), point("convex_query", 400)) is Verdict.GO


def test_not_go_just_above_min_speedup() -> None:
    d = decide([point("supabase_rest", 800), point("convex_query", 400.4)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "neither GO nor OPTIMISE" in d.reason


def test_go_just_below_min_speedup() -> None:
    assert run(point("supabase_rest", 800), point("convex_query", 399.6)) is Verdict.GO


def test_min_speedup_option_moves_the_boundary() -> None:
    s, c = point("supabase_rest", 800), point("convex_query", 480)  # ratio 0.6
    assert run(s, c) is Verdict.INCONCLUSIVE
    assert run(s, c, min_speedup=0.4) is Verdict.GO


# ---------------------------------------------------------------- P95 target boundary (< 500 ms)

def test_go_just_under_p95_target() -> None:
    assert run(point("supabase_rest", 1200), point("convex_query", 499.9)) is Verdict.GO


def test_not_go_at_p95_target() -> None:
    d = decide([point("supabase_rest", 1200), point("convex_query", 500)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "not under 500 ms" in d.reason


def test_p95_target_option() -> None:
    s, c = point("supabase_rest", 1200), point("convex_query", 550)
    assert run(s, c) is Verdict.INCONCLUSIVE
    assert run(s, c, p95_target_ms=600) is Verdict.GO


# ---------------------------------------------------------------- equivalence boundary (ratio > 0.8)

def test_exactly_twenty_percent_apart_is_not_equivalent() -> None:
    assert run(point("supabase_rest", 100), point("convex_query", 80)) is Verdict.INCONCLUSIVE


def test_just_within_twenty_percent_is_optimise() -> None:
    d = decide([point("supabase_rest", 100), point("convex_query", 80.1)])
    assert d.verdict is Verdict.OPTIMISE_SUPABASE
    assert "differ by less than 20%" in d.reason


def test_convex_slower_is_optimise() -> None:
    d = decide([point("supabase_rest", 100), point("convex_query", 300)])
    assert d.verdict is Verdict.OPTIMISE_SUPABASE
    assert "Convex is the slower" in d.reason


def test_equivalence_option() -> None:
    s, c = point("supabase_rest", 100), point("convex_query", 75)
    assert run(s, c) is Verdict.INCONCLUSIVE
    assert run(s, c, equivalence=0.3) is Verdict.OPTIMISE_SUPABASE


# ---------------------------------------------------------------- evidence

def test_min_samples_boundary() -> None:
    s = point("supabase_rest", 800)
    assert run(s, point("convex_query", 100, n=1000)) is Verdict.GO
    d = decide([s, point("convex_query", 100, n=999)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "convex_query: 999 samples (< 1000" in d.reason
    assert run(s, point("convex_query", 100, n=999), min_samples=999) is Verdict.GO


def test_thin_baseline_is_inconclusive() -> None:
    d = decide([point("supabase_rest", 800, n=10), point("convex_query", 100)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "supabase_rest: 10 samples" in d.reason


def test_failure_ratio_boundary() -> None:
    s = point("supabase_rest", 800)
    # 20 failures of 2000 = exactly 1 %: allowed
    assert run(s, point("convex_query", 100, n=1980, failures=20)) is Verdict.GO
    d = decide([s, point("convex_query", 100, n=1979, failures=21)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "failure ratio 1.05%" in d.reason


def test_failing_convex_variant_is_skipped_for_the_other() -> None:
    d = decide([point("supabase_rest", 800), point("convex_http", 50, failures=500), point("convex_query", 120)])
    assert d.verdict is Verdict.GO
    assert d.convex == "convex_query"
    assert d.evidence["convex_http"]


def test_best_convex_variant_decides() -> None:
    d = decide([point("supabase_rest", 800), point("convex_http", 390), point("convex_query", 420)])
    assert d.convex == "convex_http"
    assert d.verdict is Verdict.GO
    subjects = {c.subject for c in d.criteria}
    assert {"convex_http", "convex_query", "supabase_rest"} <= subjects


def test_missing_targets_are_inconclusive() -> None:
    d = decide([point("convex_query", 100)])
    assert d.verdict is Verdict.INCONCLUSIVE and "supabase_rest was not measured" in d.reason
    d = decide([point("supabase_rest", 100)])
    assert d.verdict is Verdict.INCONCLUSIVE and "no Convex target measured" in d.reason


def test_all_failed_and_zero_requests_are_inconclusive_for_the_live_tab() -> None:
    empty = TargetStats("convex_query", None, None, None, count=0, failures=0)
    failed = TargetStats("convex_http", None, None, None, count=0, failures=30)
    d = decide([point("supabase_rest", 800), empty, failed])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "convex_query: no requests" in d.reason and "all 30 requests failed" in d.reason


# ---------------------------------------------------------------- intervals

def test_straddling_interval_is_inconclusive() -> None:
    # true P95 ratio 0.5 with 1,200 samples each: the CI must straddle 0.5
    d = decide([lognormal("supabase_rest", 400, 1200, 1), lognormal("convex_query", 200, 1200, 2)])
    assert d.ratio is not None and d.ratio.method == "bootstrap"
    assert d.ratio.low < 0.5 < d.ratio.high
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "straddles 0.5" in d.reason


def test_clear_separation_with_samples_is_go() -> None:
    d = decide([lognormal("supabase_rest", 600, 5000, 1), lognormal("convex_query", 100, 5000, 2)])
    assert d.verdict is Verdict.GO
    assert d.ratio is not None and d.ratio.high < 0.5


def test_p95_interval_straddling_target() -> None:
    # Convex P95 near 500 ms with only 1,000 samples: its CI straddles the target
    d = decide([lognormal("supabase_rest", 3000, 5000, 1), lognormal("convex_query", 500 / math.exp(1.645 * 0.4), 1000, 3)])
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "straddles the 500 ms target" in d.reason


def test_csv_bucket_bounds() -> None:
    # Locust reports 1000 for [950, 1050] and 490 for [485, 495]: ratio in [0.462, 0.521]
    d = decide([csv_target("supabase_rest", 1000), csv_target("convex_query", 490)])
    assert d.ratio is not None and d.ratio.method == "bucket bounds"
    assert d.verdict is Verdict.INCONCLUSIVE
    assert run(csv_target("supabase_rest", 1000), csv_target("convex_query", 450)) is Verdict.GO
    assert any("bucketed" in n for n in d.notes)


def test_require_ci_refuses_csv_only() -> None:
    s, c = csv_target("supabase_rest", 1000), csv_target("convex_query", 100)
    assert run(s, c) is Verdict.GO
    d = decide([s, c], Thresholds(require_ci=True))
    assert d.verdict is Verdict.INCONCLUSIVE and "--require-ci" in d.reason


# ---------------------------------------------------------------- second finding and levels

def test_second_finding_uses_best_optimised_variant() -> None:
    d = decide([point("supabase_rest", 800), point("convex_query", 100),
                point("supabase_nested", 150), point("supabase_rpc", 110)])
    f = d.second_finding
    assert f is not None and f.optimised == "supabase_rpc" and f.convex == "convex_query"
    assert f.outcome == "comparable"  # 100/110 = 0.909 > 0.8
    assert "reaches P95 110 ms" in f.text and "meets the 500 ms target" in f.text
    assert "alternative path holds" in f.text


def test_second_finding_convex_still_faster_and_not_measured() -> None:
    f = decide([point("supabase_rest", 800), point("convex_query", 100), point("supabase_rpc", 400)]).second_finding
    assert f is not None and f.outcome == "convex still faster"
    f = decide([point("supabase_rest", 800), point("convex_query", 100)]).second_finding
    assert f is not None and f.outcome == "not measured" and f.optimised is None


def test_api_level_is_decided_separately() -> None:
    ds = decide_all([point("supabase_rest", 800), point("convex_query", 100),
                     point("api_supabase", 200), point("api_convex", 190)])
    assert ds["direct"].verdict is Verdict.GO
    assert ds["api"].verdict is Verdict.OPTIMISE_SUPABASE
    assert ds["api"].baseline == "api_supabase" and ds["api"].second_finding is None
    assert "api" not in decide_all([point("supabase_rest", 800), point("convex_query", 100)])


def test_queries_criterion_uses_the_queries_behind_api_routes() -> None:
    d = decide([point("api_supabase", 800), point("api_convex", 100)], level="api")
    rows = {(c.subject, c.name): c for c in d.criteria}
    assert rows[("api_supabase", "queries per lookup")].passed is False
    assert rows[("api_convex", "queries per lookup")].passed is True


# ---------------------------------------------------------------- API surface

def test_exit_codes() -> None:
    assert EXIT_CODES == {Verdict.GO: 0, Verdict.OPTIMISE_SUPABASE: 10, Verdict.INCONCLUSIVE: 11}
    assert decide([point("supabase_rest", 800), point("convex_query", 100)]).exit_code == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"equivalence": 0.6}, "must not exceed --min-speedup"),
        ({"min_speedup": 1.0}, "--min-speedup"),
        ({"p95_target_ms": 0}, "--p95-target-ms"),
        ({"min_samples": 0}, "--min-samples"),
        ({"max_failure_ratio": 1.5}, "--max-failure-ratio"),
    ],
)
def test_invalid_thresholds(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide([point("supabase_rest", 800)], Thresholds(**changes))  # type: ignore[arg-type]


def test_decision_serialises() -> None:
    d = decide([point("supabase_rest", 800), point("convex_query", 100), point("supabase_rpc", 150)])
    out = d.to_dict()
    assert out["verdict"] == "GO" and out["exit_code"] == 0
    assert out["thresholds"]["p95_target_ms"] == 500
    assert {c["status"] for c in out["criteria"]} <= {"pass", "fail", "undetermined"}
    assert out["second_finding"]["optimised"] == "supabase_rpc"


def test_target_from_histogram_matches_hdrh() -> None:
    from hdrh.histogram import HdrHistogram

    rng = random.Random(5)
    h = HdrHistogram(1, 3_600_000_000, 3)
    for _ in range(5000):
        h.record_value(int(rng.lognormvariate(math.log(80_000), 0.5)))
    t = target_from_histogram("convex_query", h, failures=3, rps=12.5)
    assert t.count == 5000 and t.failures == 3 and t.source == "hdr"
    assert t.p95_ms == pytest.approx(h.get_value_at_percentile(95) / 1000)
    assert t.p50_ms == pytest.approx(h.get_value_at_percentile(50) / 1000)
    assert t.level == "direct" and t.round_trips == 1


def test_rules_import_without_pandas_numpy_matplotlib() -> None:
    code = "import sys, reports.rules; print(sorted(m for m in ('pandas', 'numpy', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(min_value=10, max_value=5000),
    ratio=st.floats(min_value=0.05, max_value=3.0),
)
def test_point_mass_verdicts_follow_the_spike_rule(base: float, ratio: float) -> None:
    convex = base * ratio
    d = decide([point("supabase_rest", base), point("convex_query", convex)])
    measured = convex / base
    if convex < 500 and measured <= 0.5:
        assert d.verdict is Verdict.GO
    elif measured > 0.8:
        assert d.verdict is Verdict.OPTIMISE_SUPABASE
    else:
        assert d.verdict is Verdict.INCONCLUSIVE


def test_unknown_queries_block_go() -> None:
    unknown = point("convex_query", 100)
    # the registry fills these in for known ids; a harness could still send an unregistered shape
    object.__setattr__(unknown, "queries", None)
    object.__setattr__(unknown, "round_trips", None)
    d = decide([point("supabase_rest", 800), unknown])
    assert d.verdict is Verdict.INCONCLUSIVE and "queries per lookup are unknown" in d.reason


def test_target_from_a_real_locust_stats_entry() -> None:
    """Run in a subprocess: importing locust monkey-patches the interpreter with gevent."""
    code = """
import locust.stats as ls
from reports.rules import target_from_locust_entry, decide
stats = ls.RequestStats()
for ms in range(1, 1201):
    stats.log_request("lookup", "convex_query", ms / 10, 0)
for ms in range(1, 1201):
    stats.log_request("lookup", "supabase_rest", ms, 0)
stats.log_error("lookup", "supabase_rest", "boom")
c = target_from_locust_entry("convex_query", stats.get("convex_query", "lookup"))
s = target_from_locust_entry("supabase_rest", stats.get("supabase_rest", "lookup"))
print(c.count, c.failures, c.p95_ms, s.count, s.failures, s.p95_ms, c.source, decide([c, s]).ratio.method.replace(" ", "_"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    c_count, c_fail, c_p95, s_count, s_fail, s_p95, source, method = out.stdout.split()
    assert (int(c_count), int(c_fail), int(s_count), int(s_fail)) == (1200, 0, 1199, 1)
    assert float(c_p95) == 110 and float(s_p95) == 1100  # Locust's buckets: 1 ms < 100 ms, 10 ms < 1 s, 100 ms < 10 s
    assert source == "locust" and method == "bucket_bounds"
