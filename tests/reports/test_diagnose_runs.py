"""``round_trips`` and ``pool_saturation``: from a real run's CSVs and HDR artifact (tests/reports/fixtures,
made by make_fixtures.py), and from artifacts carrying per-call phases, server metrics and the
database record, built here in the documented format (docs/formats.md, docs/diagnosis.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from harness.contracts import write_artifact
from reports.diagnose import runs
from reports.load import BadInput

FIXTURES = Path(__file__).parent / "fixtures"


def hdr(values_ms: list[float]) -> str:
    h = HdrHistogram(1, 3_600_000_000, 3)
    for v in values_ms:
        h.record_value(int(v * 1000))
    return h.encode().decode("ascii")


def entry(name: str, client_ms: float, type_: str = "GET", step: int | None = None,
          phases: dict[str, float] | None = None, metrics: dict[str, float] | None = None,
          n: int = 50) -> dict[str, Any]:
    e: dict[str, Any] = {"type": type_, "name": name, "step": step, "count": n, "failures": 0, "unit": "us",
                         "hdr": hdr([client_ms] * n)}
    if phases is not None:
        e["phases"] = {k: {"count": n, "hdr": hdr([v] * n)} for k, v in phases.items()}
    if metrics is not None:
        e["server_metrics"] = {k: {"sum_ms": v * n, "count": n} for k, v in metrics.items()}
    return e


def write_run(tmp_path: Path, entries: list[dict[str, Any]], metadata: dict[str, Any] | None = None) -> str:
    meta = {"targets": {"supabase_rest": {"host": "http://127.0.0.1:54321", "level": "direct", "round_trips": 4}},
            "warmup_s": 0, **(metadata or {})}
    write_artifact(tmp_path / "run_hdr.json", meta, entries)
    return str(tmp_path / "run")


REST_CALLS = ("contacts", "conversations", "messages", "contact_notes")


def test_round_trips_from_a_real_run_without_server_timing() -> None:
    run = runs.read_run(str(FIXTURES / "go" / "run"))
    assert run.source == "hdr+csv"  # format /1: lookups in the artifact, calls in the CSV
    (f,) = runs.round_trips(run)
    assert f.code == "round_trips" and f.table is None
    calls = [run.calls[f"supabase_rest {w}"].client_p50 for w in ("contacts", "conversations", "messages", "notes")]
    per_call = sorted(c for c in calls if c is not None)
    median = (per_call[1] + per_call[2]) / 2
    assert f.evidence["basis"] == "client"
    assert f.evidence["cost_ms_p50"] == pytest.approx(3 * median, abs=0.01)
    assert f.evidence["lookup_p50_ms"] == pytest.approx(run.lookups_p50["supabase_rest"])
    assert "no server timing" in f.detail and "3 of them cost" in f.detail
    assert "supabase_nested P50" in f.detail and "supabase_rpc P50" in f.detail
    assert f.severity == "high"  # 4 calls of ~31 ms in a 130 ms lookup
    assert "nested select" in f.fix and "rpc/get_contact_context" in f.fix


def test_round_trips_from_the_csv_alone(tmp_path: Path) -> None:
    for name in ("run_stats.csv", "run_failures.csv", "run_stats_history.csv"):
        shutil.copy(FIXTURES / "go" / name, tmp_path / name)
    run = runs.read_run(str(tmp_path / "run"))
    assert run.source == "csv"
    (f,) = runs.round_trips(run)
    assert f.evidence["basis"] == "client" and f.evidence["requests"] == 4


def test_round_trips_take_the_server_time_out(tmp_path: Path) -> None:
    # each call: 30 ms at the client, of which PostgREST's Server-Timing adds up to 5 ms
    st = {"jwt": 0.2, "parse": 0.1, "plan": 0.2, "transaction": 4.4, "response": 0.1}
    entries = [entry(f"supabase_rest {w}", 30.0, phases={"ttfb": 29.0, "download": 1.0, "server": 5.0}, metrics=st)
               for w in REST_CALLS]
    entries += [entry("supabase_rest", 120.0, type_="lookup"), entry("supabase_nested", 35.0, type_="lookup"),
                entry("supabase_rest contacts id", 12.0)]  # a write call: not one of the lookup's round trips
    (f,) = runs.round_trips(runs.read_run(write_run(tmp_path, entries)))
    assert f.evidence["basis"] == "non-server"
    assert f.evidence["per_call_ms"] == pytest.approx(25.0, abs=0.1)
    assert f.evidence["cost_ms_p50"] == pytest.approx(75.0, abs=0.3)
    assert f.severity == "high"  # 75 of 120 ms
    assert "non-server" in f.detail and "62%" in f.detail
    assert f.statements == sorted(f"supabase_rest {w}" for w in REST_CALLS)


def test_calls_without_server_timing_count_whole(tmp_path: Path) -> None:
    # one call without the header (no `server` phase): the split cannot be made for the path
    entries = [entry(f"supabase_rest {w}", 10.0, phases={"ttfb": 9.0, "server": 8.0}) for w in REST_CALLS[:3]]
    entries += [entry("supabase_rest contact_notes", 10.0, phases={"ttfb": 9.0}),
                entry("supabase_rest", 80.0, type_="lookup")]
    (f,) = runs.round_trips(runs.read_run(write_run(tmp_path, entries)))
    assert f.evidence["basis"] == "client" and f.evidence["per_call_ms"] == pytest.approx(10.0, abs=0.05)
    assert f.severity == "medium"  # 30 of 80 ms: >= 25 %, < 50 %


def sample(active: int, total: int, max_connections: int = 200, t: float = 0.0) -> dict[str, Any]:
    return {"t": t, "max_connections": max_connections, "active": active, "idle": total - active, "total": total,
            "by_role": {"authenticator": {"active": active, "idle": total - active, "idle_in_transaction": 0,
                                          "other": 0, "total": total}}}


def test_pool_saturation_from_activity_samples(tmp_path: Path) -> None:
    activity = [sample(10, 10, t=i) for i in range(6)] + [sample(4, 10, t=10 + i) for i in range(4)]
    run = runs.read_run(write_run(tmp_path, [], {"database": {"activity": activity}}))
    (f,) = runs.pool_saturation(run)
    assert f.code == "pool_saturation" and f.severity == "high"
    assert f.evidence == {"pool_connections": 10, "busy_samples": 6, "samples": 10}
    assert "6 of 10 activity samples" in f.detail


def test_no_saturation_when_the_pool_has_room(tmp_path: Path) -> None:
    activity = [sample(3, 10, t=i) for i in range(9)] + [sample(10, 10, t=9)]
    run = runs.read_run(write_run(tmp_path, [], {"database": {"activity": activity}}))
    assert runs.pool_saturation(run) == []


def test_max_connections_reached(tmp_path: Path) -> None:
    activity = [sample(2, 10, max_connections=60, t=0), {**sample(2, 10, max_connections=60, t=1), "total": 58}]
    (f,) = runs.pool_saturation(runs.read_run(write_run(tmp_path, [], {"database": {"activity": activity}})))
    assert "58 of max_connections 60" in f.detail


def test_transaction_time_growing_while_execution_stays_flat(tmp_path: Path) -> None:
    entries = []
    for step, tx in ((0, 1.0), (1, 2.5), (2, 9.0)):
        entries += [entry(f"supabase_rest {w}", 5 + tx, step=step, phases={"server": tx + 0.4},
                          metrics={"transaction": tx, "jwt": 0.1}) for w in REST_CALLS]
    steps_db = [{"index": i, "statements": [{"target": "supabase_rest", "call": "contacts", "mean_exec_time_ms": m}]}
                for i, m in ((0, 0.20), (1, 0.21), (2, 0.22))]
    meta = {"steps": [{"index": i, "users": u, "start": 0, "end": 1} for i, u in ((0, 10), (1, 20), (2, 40))],
            "database": {"steps": steps_db}}
    (f,) = runs.pool_saturation(runs.read_run(write_run(tmp_path, entries, meta)))
    assert "transaction time (mean) grew from 1.0 ms at 10 users to 9.0 ms at 40 users" in f.detail
    # execution growing with the transaction time is the database's own load, not the pool
    for s in steps_db:
        s["statements"][0]["mean_exec_time_ms"] = 0.2 + 8 * s["index"]
    assert runs.pool_saturation(runs.read_run(write_run(tmp_path, entries, meta))) == []


@pytest.mark.parametrize(("doc", "message"), [
    ({"format": "other/1", "metadata": {}, "entries": []}, "format is 'other/1'"),
    ({"format": "crm-latency-hdr/2", "metadata": {}, "entries": [{"type": "GET"}]}, "must be strings"),
    ({"format": "crm-latency-hdr/2", "metadata": {}, "entries": [
        {"type": "GET", "name": "supabase_rest contacts", "hdr": "bm90IGhkcg=="}]}, "not a decodable HdrHistogram"),
    ({"format": "crm-latency-hdr/2", "metadata": {}, "entries": [
        {"type": "GET", "name": "supabase_rest contacts", "hdr": hdr([1.0]), "phases": {"server": 3}}]},
     "phases.server needs 'hdr'"),
    ({"format": "crm-latency-hdr/2", "metadata": {}, "entries": [
        {"type": "GET", "name": "supabase_rest contacts", "hdr": hdr([1.0]), "server_metrics": {"jwt": 1}}]},
     "server_metrics.jwt needs 'sum_ms' and 'count'"),
])
def test_bad_artifacts_are_one_line(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    (tmp_path / "run_hdr.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=message) as err:
        runs.read_run(str(tmp_path / "run"))
    assert "\n" not in str(err.value)


def test_no_run_there(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no run there"):
        runs.read_run(str(tmp_path / "nothing"))
