"""The live verdict goes through reports.rules; the exit code follows it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from harness import decision
from harness.hdr import Recorder
from harness.options import HarnessOptions


def fake_harness(medians: dict[str, float], n: int = 3000, data_parity: dict | None = None) -> SimpleNamespace:
    rec = Recorder()
    rec.start(0)
    rng = random.Random(1)
    for target, median in medians.items():
        for _ in range(n):
            rec.record("lookup", target, median * rng.lognormvariate(0, 0.3), False, 1)
    now = datetime.now(UTC)
    return SimpleNamespace(
        recorder=rec, options=HarnessOptions(targets=tuple(medians), warmup=0, min_samples=1000),
        started_at=now - timedelta(seconds=60), ended_at=now, pacer_summary=dict, sandbox=True,
        data_parity=data_parity, cpu_summary=dict,
    )


def test_go_when_convex_is_fast() -> None:
    h = fake_harness({"supabase_rest": 1200.0, "convex_query": 90.0})
    d = decision.compute(h)  # type: ignore[arg-type]
    assert d["direct"].verdict.value == "GO"
    assert decision.exit_code(d, h.options.targets) == 0
    rows = decision.table_rows(h)  # type: ignore[arg-type]
    assert rows[0]["item"] == "VERDICT (direct)" and rows[0]["value"] == "GO"
    payload = decision.payload(h)  # type: ignore[arg-type]
    assert payload["exit_code"] == 0 and payload["decisions"]["direct"]["convex"] == "convex_query"


def test_optimise_when_comparable_and_inconclusive_without_evidence() -> None:
    h = fake_harness({"supabase_rest": 100.0, "convex_http": 98.0})
    d = decision.compute(h)  # type: ignore[arg-type]
    assert decision.exit_code(d, h.options.targets) == 10
    few = fake_harness({"supabase_rest": 100.0, "convex_http": 40.0}, n=50)
    assert decision.exit_code(decision.compute(few), few.options.targets) == 11  # type: ignore[arg-type]


def test_api_level_decides_when_only_routes_ran() -> None:
    h = fake_harness({"api_supabase": 900.0, "api_convex": 80.0})
    d = decision.compute(h)  # type: ignore[arg-type]
    assert set(d) == {"api"}  # no direct backend was measured: no direct decision to show
    assert decision.exit_code(d, h.options.targets) == 0


def test_an_allowed_data_mismatch_is_inconclusive_with_that_reason() -> None:
    mismatch = {"status": "mismatch", "method": "counts", "allowed": True,
                "tables": {"contacts": {"supabase": 300, "convex": 600}}}
    h = fake_harness({"supabase_rest": 1200.0, "convex_query": 90.0}, data_parity=mismatch)
    d = decision.compute(h)["direct"]  # type: ignore[arg-type]
    assert d.verdict.value == "INCONCLUSIVE"
    assert d.reason == "The run cannot decide: data differs between Supabase and Convex (run with --allow-data-mismatch)."
    assert d.notes[-1].startswith("Without these problems the rules would give GO")
    assert decision.exit_code({"direct": d}, h.options.targets) == 11


def test_failed_writes_count_in_the_target_failure_ratio() -> None:
    h = fake_harness({"supabase_rest": 1200.0, "convex_query": 90.0})
    for _ in range(200):  # 200 failed writes next to 3,000 good lookups: 6.25 % of the target's requests
        h.recorder.record("write", "convex_query", 5.0, True)
    d = decision.compute(h)["direct"]  # type: ignore[arg-type]
    convex = next(t for t in d.targets if t.target == "convex_query")
    assert (convex.requests, convex.failures, convex.other_failures) == (3200, 0, 200)
    assert convex.failure_ratio == 200 / 3200
    assert d.verdict.value == "INCONCLUSIVE"
    assert d.run_problems == ("convex_query failed 6.25% of its 3200 requests (> 1.00%)",)


def test_a_saturated_generator_is_inconclusive_with_that_reason() -> None:
    h = fake_harness({"supabase_rest": 1200.0, "convex_query": 90.0})
    start = h.started_at.timestamp()
    # 60 one-second samples: 12 of them (20 % of the window) above 90 % of a core
    busy = {"local": [(start + i, 97.0 if i % 5 == 0 else 40.0) for i in range(60)]}
    h.cpu_summary = lambda: busy
    d = decision.compute(h)["direct"]  # type: ignore[arg-type]
    assert d.verdict.value == "INCONCLUSIVE"
    assert d.run_problems == ("generator saturated: Locust process local was above 90 % CPU for 20% of the "
                              "measured window (its latencies include its own queueing)",)
    calm = {"local": [(start + i, 97.0 if i % 20 == 0 else 40.0) for i in range(60)]}  # 5 %: fine
    h.cpu_summary = lambda: calm
    assert decision.compute(h)["direct"].verdict.value == "GO"  # type: ignore[arg-type]
