"""bench.pairs: the interleaved order, the median ratio's interval, verdicts and the docs block."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import pairs


def test_order_interleaves_so_each_side_goes_first_in_half_the_pairs() -> None:
    got = pairs.order(4)
    assert got == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    flat = [s for p in pairs.order(10) for s in p]
    assert flat[:6] == ["a", "b", "b", "a", "a", "b"]
    assert sum(first == "a" for first, _ in pairs.order(10)) == 5
    with pytest.raises(ValueError):
        pairs.order(0)


def test_run_pairs_measures_in_that_order_and_aligns_results_by_pair() -> None:
    calls: list[tuple[str, int]] = []
    seen: list[int] = []

    def measure(side: pairs.Side, i: int) -> str:
        calls.append((side, i))
        return f"{side}{i}"

    a, b = pairs.run_pairs(3, measure, progress=lambda i, x, y: seen.append(i))
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert a == ["a0", "a1", "a2"] and b == ["b0", "b1", "b2"]
    assert seen == [0, 1, 2]


def test_median_interval_holds_the_median_and_is_reproducible() -> None:
    values = [0.81, 0.86, 0.84, 0.9, 0.79, 0.88, 0.83, 0.85, 0.87, 0.82]
    est = pairs.median_interval(values)
    assert est.median == pytest.approx(0.845)
    assert min(values) <= est.low <= est.median <= est.high <= max(values)
    assert est.n == 10 and est.confidence == 0.95
    assert pairs.median_interval(values) == est  # seeded: the same values, the same interval
    wider = pairs.median_interval(values, confidence=0.99)
    assert wider.low <= est.low and wider.high >= est.high


def test_median_interval_of_one_value_or_equal_values_has_no_width() -> None:
    assert pairs.median_interval([2.0]) == pairs.Estimate(2.0, 2.0, 2.0, 1)
    assert pairs.median_interval([3.0, 3.0, 3.0]) == pairs.Estimate(3.0, 3.0, 3.0, 3)


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [math.inf, 1.0]])
def test_median_interval_refuses_empty_or_non_finite_values(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        pairs.median_interval(bad)


def test_interval_covers_a_planted_median_ratio_about_95_percent_of_the_time() -> None:
    # 10 pairs whose ratios scatter around a true median of 0.85 (log-normal, heavier tails in some)
    rng = np.random.default_rng(7)
    trials, hits = 120, 0
    for _ in range(trials):
        noise = rng.normal(0, 0.08, 10) + (rng.random(10) < 0.15) * rng.normal(0, 0.3, 10)
        plain = rng.uniform(150, 300, 10)
        harness = plain / (0.85 * np.exp(noise))  # CPU per lookup: capacity ratio = plain / harness
        est = pairs.ratio(plain.tolist(), harness.tolist())
        hits += est.low <= 0.85 <= est.high
    assert 0.85 <= hits / trials <= 1.0


def test_ratio_and_difference_are_per_pair() -> None:
    # a drift that doubles both sides of a pair leaves its ratio alone
    a = [110.0, 220.0, 330.0]
    b = [100.0, 200.0, 300.0]
    assert pairs.ratios(a, b) == pytest.approx([1.1, 1.1, 1.1])
    assert pairs.ratio(a, b).median == pytest.approx(1.1)
    assert pairs.difference(a, b).median == pytest.approx(20.0)
    with pytest.raises(ValueError):
        pairs.ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        pairs.ratio([1.0], [0.0])


def test_comparison_inverse_ratio_is_b_over_a() -> None:
    c = pairs.Comparison("cpu", "harness", "plain", [200.0, 210.0], [170.0, 168.0], unit="µs", inverse=True)
    assert c.estimate.median == pytest.approx((170 / 200 + 168 / 210) / 2)
    assert c.what() == "plain/harness"
    assert c.verdict is None


@pytest.mark.parametrize(
    ("low", "high", "at_least", "expected"),
    [
        (0.86, 0.9, True, "met"),
        (0.85, 0.9, True, "met"),
        (0.8, 0.84, True, "not met"),
        (0.8, 0.9, True, "undecided"),
        (1.0, 1.4, False, "met"),
        (1.6, 1.8, False, "not met"),
        (1.4, 1.6, False, "undecided"),
    ],
)
def test_goal_verdict_is_decided_on_the_whole_interval(low: float, high: float, at_least: bool, expected: str) -> None:
    goal = pairs.Goal("x", 0.85 if at_least else 1.5, at_least=at_least)
    assert goal.verdict(pairs.Estimate((low + high) / 2, low, high, 10)) == expected


def test_exit_code_reports_the_worst_verdict() -> None:
    met = pairs.Comparison("m", "a", "b", [10.0, 10.0], [5.0, 5.0], goal=pairs.Goal("g", 1.5))
    missed = pairs.Comparison("n", "a", "b", [1.0, 1.0], [5.0, 5.0], goal=pairs.Goal("g", 1.5))
    open_ = pairs.Comparison("u", "a", "b", [1.0, 3.0, 2.0], [1.0, 1.0, 1.0], goal=pairs.Goal("g", 1.5))
    assert open_.verdict == "undecided"
    assert pairs.exit_code([met]) == 0
    assert pairs.exit_code([met, open_]) == 4
    assert pairs.exit_code([met, open_, missed]) == 3


def test_summary_table_shows_spread_interval_goal_and_verdict() -> None:
    c = pairs.Comparison("CPU per lookup", "harness", "plain", [200.0, 220.0, 210.0], [180.0, 190.0, 185.0],
                         unit="µs", inverse=True, goal=pairs.Goal("capacity", 0.85))
    table = pairs.summary_table([c])
    row = table.splitlines()[2]
    assert "harness 210 µs (200–220)" in row and "plain 185 µs (180–190)" in row
    assert f"{c.estimate.median:.2f} [{c.estimate.low:.2f}, {c.estimate.high:.2f}]" in row
    assert "≥ 0.85" in row and f"**{c.verdict}**" in row
    assert pairs.verdict_lines([c]) == [
        f"CPU per lookup: plain/harness {c.estimate.format()} (goal ≥ 0.85): {c.verdict}"]


def test_replace_block_rewrites_only_its_block() -> None:
    doc = "# B\n\nintro\n\n## One\n\nprose before\n<!-- bench:one -->\nold\n<!-- /bench:one -->\nprose after\n"
    new = pairs.replace_block(doc, "one", "new table", "## One")
    assert new == "# B\n\nintro\n\n## One\n\nprose before\n<!-- bench:one -->\nnew table\n<!-- /bench:one -->\nprose after\n"
    assert pairs.replace_block(new, "one", "new table", "## One") == new
    added = pairs.replace_block(doc, "two", "t2", "## Two")
    assert added.startswith(doc.rstrip("\n"))
    assert added.endswith("\n\n## Two\n\n<!-- bench:two -->\nt2\n<!-- /bench:two -->\n")
    with pytest.raises(ValueError):
        pairs.replace_block("<!-- bench:one -->\nunclosed", "one", "x", "## One")


def test_write_docs_and_json(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Gen\n<!-- bench:gen -->\n<!-- /bench:gen -->\nkept\n")
    pairs.write_docs("gen", "| table |", "## Gen", docs)
    assert docs.read_text() == "# Benchmarks\n\n## Gen\n<!-- bench:gen -->\n| table |\n<!-- /bench:gen -->\nkept\n"
    c = pairs.Comparison("x", "a", "b", [2.0, 2.2], [1.0, 1.0], goal=pairs.Goal("g", 1.5))
    with pairs.LoadMonitor(interval=0.01) as load:
        pass
    assert load.samples and "load average" in load.label()
    out = tmp_path / "r.json"
    pairs.write_json(out, "gen", [c], pairs.machine(), load, "cmd")
    doc = json.loads(out.read_text())
    assert doc["format"] == "crm-bench/1" and doc["metadata"]["cores"] >= 1
    assert doc["comparisons"][0]["verdict"] == "met"
    assert doc["comparisons"][0]["a"]["values"] == [2.0, 2.2]


def test_command_line_leaves_out_the_output_options() -> None:
    argv = ["--pairs", "12", "--write-docs", "--json", "r.json", "--json=x.json", "--users", "40"]
    assert pairs.command_line("-m bench.bench_generator", argv) == \
        ".venv/bin/python -m bench.bench_generator --pairs 12 --users 40"


def test_pairs_option_refuses_less_than_one() -> None:
    ap = argparse.ArgumentParser()
    pairs.add_arguments(ap)
    assert ap.parse_args([]).pairs == pairs.DEFAULT_PAIRS
    assert ap.parse_args(["--pairs", "12"]).pairs == 12
    with pytest.raises(SystemExit):
        ap.parse_args(["--pairs", "0"])


def test_check_decides_an_absolute_quantity_on_its_median_interval() -> None:
    c = pairs.Check("P95 per round", [12.0, 14.0, 13.0, 15.0, 11.0], unit="ms",
                    goal=pairs.Goal("P95 on loopback", 50, at_least=False), spec=".1f")
    assert c.estimate.median == 13.0 and c.verdict == "met"
    row = pairs.checks_table([c], runs_label="rounds").splitlines()[2]
    assert row.startswith("| P95 per round | 5 | 11.0–15.0 ms | 13.0 ms [")
    assert "≤ 50 ms" in row and "**met**" in row
    assert pairs.verdict_lines([c]) == [f"P95 per round: {c.estimate.format('.1f', ' ms')} (check ≤ 50 ms): met"]
    straddling = pairs.Check("error", [0.5, 0.9, 1.4, 0.7], unit="%", goal=pairs.Goal("worst error", 1.0, at_least=False))
    assert straddling.verdict == "undecided"
    assert pairs.exit_code([c, straddling]) == 4


def test_node_results_become_comparisons_and_checks() -> None:
    from bench import node

    doc = {
        "comparisons": [{"name": "1 client: lookups/s", "a_label": "http action", "b_label": "api/query",
                         "a": [100, 110], "b": [200, 200]}],
        "checks": [{"name": "Convex P95", "values": [30.0, 40.0], "unit": "ms",
                    "goal": {"label": "P95", "threshold": 50, "at_least": False}}],
    }
    comps, checks = node.results(doc)
    assert comps[0].estimate.median == pytest.approx(0.525) and comps[0].goal is None
    assert checks[0].goal == pairs.Goal("P95", 50.0, at_least=False) and checks[0].verdict == "met"


def test_bench_runner_refuses_an_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import BENCHES, main

    assert main(["nosuch"]) == 2
    assert "unknown benchmark nosuch" in capsys.readouterr().err
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(b.name in listed for b in BENCHES)
