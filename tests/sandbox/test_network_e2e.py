"""The round-trip mechanism, end to end: short headless Locust runs of every target against the
seeded sandbox, on loopback and then with known RTTs on the links.

With RTT R on ``supabase`` and ``convex`` (no jitter), each lookup pays its round trips:
``supabase_rest`` (4 sequential requests) ~ 4R more than on loopback, every one-request
path ~ R. The app's own link ``app-supabase`` at RTT A adds ~ 4A to ``api_supabase`` (the
route's 4 queries) and nothing to ``supabase_rest``; ``app-convex`` stays direct, so
``api_convex`` does not move. P50 differences, within 10 %.

Both runs offer the same light load, an open model of 8 lookups/s per target: a closed
model would send more lookups on loopback (each is faster), and the busier machine would
queue there, blurring the difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports.load import read_hdr
from sandbox import launcher
from sandbox.network import active_profile, resolve
from sandbox.services import CONVEX_RUNTIME
from tests.harness.helpers import AI_CONTEXT, final_counts, run_locust

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

R_MS = 40.0  # supabase and convex links
A_MS = 30.0  # the app's link to Supabase
TOLERANCE = 0.10
DIRECT = ["supabase_rest", "supabase_nested", "supabase_rpc", "convex_http", "convex_query"]
API = ["api_supabase", "api_convex"]


@pytest.fixture(scope="module")
def stack(seeded_sandbox: dict[str, Any]) -> Iterator[tuple[Path, list[str], Path]]:
    if not CONVEX_RUNTIME.exists():
        pytest.skip("the sandbox has no Convex runtime")
    env = seeded_sandbox["env"]
    state = Path(env["SANDBOX_DIR"])
    services = ["postgres", "supabase", "convex", "nextjs"]
    try:
        yield state, services, Path(seeded_sandbox["workload"])
    finally:
        launcher.up(services, state)  # back on loopback, the app with direct URLs


def _p50s(state: Path, services: list[str], workload: Path, tmp: Path, network: Any) -> dict[str, float]:
    env = launcher.up(services, state, network)
    known = json.loads(workload.read_text())
    (tmp / "workload.json").write_text(json.dumps(known))
    targets = DIRECT + API
    prefix = tmp / "run"
    p = run_locust(
        ["-f", AI_CONTEXT, "--headless", "-u", str(3 * len(targets)), "-r", "50", "-t", "12s", "--csv", str(prefix),
         "--json-file", str(tmp / "final"), "--warmup", "2", "--targets", *targets, "--write-weight", "0",
         "--unknown-weight", "0", "--open-rate", "8"],
        {**env, "SANDBOX_DIR": str(state)}, tmp, timeout=120,
    )
    assert p.returncode in (0, 10, 11), p.stderr[-3000:]
    failed = {k: v for k, v in final_counts(tmp / "final.json").items() if v[1]}
    assert not failed, (failed, p.stderr[-2000:])
    _, entries = read_hdr(Path(f"{prefix}_hdr.json"))
    p50 = {e.name: e.distribution.quantile(0.5) for e in entries if e.type == "lookup" and e.step is None}
    assert set(p50) == set(targets), p50
    return p50


def test_each_round_trip_pays_the_link_rtt(stack: tuple[Path, list[str], Path], tmp_path: Path) -> None:
    state, services, workload = stack
    (tmp_path / "loopback").mkdir()
    (tmp_path / "wan").mkdir()
    base = _p50s(state, services, workload, tmp_path / "loopback", None)
    network = resolve(None, f"supabase={R_MS:g}ms,convex={R_MS:g}ms,app-supabase={A_MS:g}ms")
    wan = _p50s(state, services, workload, tmp_path / "wan", network)
    meta = active_profile(state)
    assert meta is not None and meta["links"]["app-supabase"]["rtt_ms"] == A_MS

    added = {t: wan[t] - base[t] for t in base}
    expected = {"supabase_rest": 4 * R_MS, "supabase_nested": R_MS, "supabase_rpc": R_MS, "convex_http": R_MS,
                "convex_query": R_MS, "api_supabase": 4 * A_MS}
    report = {t: (round(base[t], 2), round(wan[t], 2), round(added[t], 2)) for t in base}
    print("P50 loopback, P50 with RTTs, added (ms):", report)
    for target, want in expected.items():
        assert abs(added[target] - want) <= TOLERANCE * want, (target, want, report)
    # the app's Convex link is direct: the route does not move (a few ms of machine noise allowed)
    assert abs(added["api_convex"]) <= 0.1 * R_MS, report
