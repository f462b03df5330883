"""Where the time goes, with planted truth: a backend that reports its own time (Server-Timing), a known
delay on the link (a test-only TCP relay), and the connection modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.load import load_run
from reports.timing import TargetTiming, database_line, target_timings
from tests.harness.fake_backend import FakeBackend
from tests.harness.helpers import AI_CONTEXT, run_locust
from tests.harness.relay import DelayRelay

pytestmark = pytest.mark.slow

SERVER_S = 0.005  # each PostgREST call takes 5 ms in the backend, and says so
ONE_WAY_S = 0.010  # the relay: 20 ms more per round trip


def _timings(tmp_path: Path, name: str, env: dict[str, str], targets: list[str], *extra: str) -> dict[str, TargetTiming]:
    prefix = tmp_path / name
    p = run_locust(
        ["-f", AI_CONTEXT, "--headless", "-u", str(2 * len(targets)), "-r", "50", "-t", "6s", "--warmup", "1",
         "--csv", str(prefix), "--targets", *targets, "--write-weight", "0", "--unknown-weight", "0",
         "--think-time", "0.01", "--min-samples", "10", *extra],
        env, tmp_path, timeout=90,
    )
    assert p.returncode in (0, 10, 11), p.stderr[-2000:]
    return {t.target: t for t in target_timings(load_run(prefix))}


def test_a_delay_on_the_link_shows_in_the_rest_not_in_the_server(tmp_path: Path) -> None:
    targets = ["supabase_rest", "supabase_rpc", "convex_http"]
    with FakeBackend(delay=lambda route: SERVER_S if route.startswith("rest") else 0.0, server_timing=True) as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        near = _timings(tmp_path, "near", fb.env(), targets)
        with DelayRelay(("127.0.0.1", fb.port), ONE_WAY_S) as relay:
            far = _timings(tmp_path, "far", {**fb.env(), "SUPABASE_URL": relay.url}, targets)
    for target, calls in (("supabase_rest", 4), ("supabase_rpc", 1)):
        a, b = near[target].at(0.5), far[target].at(0.5)
        assert a is not None and b is not None and a.server_ms is not None and b.server_ms is not None
        assert a.rest_ms is not None and b.rest_ms is not None
        planted = calls * 2 * ONE_WAY_S * 1000
        # the delay lands in the rest (network), within 10 %, and not in the server's share
        assert abs((b.rest_ms - a.rest_ms) - planted) <= 0.1 * planted, (target, a, b)
        assert abs(b.server_ms - a.server_ms) <= 0.1 * planted, (target, a, b)
        assert b.server_ms == pytest.approx(calls * SERVER_S * 1000, rel=0.5), (target, b)
        assert a.connect_ms + a.server_ms + a.rest_ms == pytest.approx(a.lookup_ms)
        assert near[target].server_timing == "all"
    # no DATABASE_URL: the database's part is left empty, and the report says why
    assert database_line(load_run(tmp_path / "near")) == "database: not measured: DATABASE_URL is not set"
    assert all(s.database_ms is None for t in near.values() for s in t.splits)
    # convex_http answers without Server-Timing: its time is not split, and says so
    convex = far["convex_http"]
    assert convex.server_timing == "none"
    assert all(s.server_ms is None and s.rest_ms is None for s in convex.splits)
    calls = {c.name: c for c in far["supabase_rest"].calls}
    assert set(calls) == {"supabase_rest contacts", "supabase_rest conversations", "supabase_rest messages",
                          "supabase_rest contact_notes"}
    assert calls["supabase_rest contacts"].server_metrics["transaction"] == pytest.approx(SERVER_S * 1000, rel=0.5)
    assert calls["supabase_rest contacts"].p50_ms["ttfb"] >= 2 * ONE_WAY_S * 1000


@pytest.mark.parametrize(("mode", "per_lookup"), [
    ("reuse", {"supabase_rest": 0.0, "supabase_rpc": 0.0, "convex_http": 0.0}),
    ("per-lookup", {"supabase_rest": 1.0, "supabase_rpc": 1.0, "convex_http": 1.0}),
    ("per-request", {"supabase_rest": 4.0, "supabase_rpc": 1.0, "convex_http": 1.0}),
])
def test_connection_modes_open_what_they_say(tmp_path: Path, mode: str, per_lookup: dict[str, float]) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        timings = _timings(tmp_path, mode, fb.env(), list(per_lookup), "--connections", mode)
    for target, expected in per_lookup.items():
        t = timings[target]
        if mode == "reuse":  # one connection per user, opened once
            assert t.new_connections_per_lookup < 0.05, (target, t.new_connections_per_lookup)
        else:
            assert t.new_connections_per_lookup == pytest.approx(expected), (target, t.new_connections_per_lookup)
            split = t.at(0.5)
            assert split is not None and split.connect_ms > 0
