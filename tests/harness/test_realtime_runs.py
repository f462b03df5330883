"""The realtime targets against the sandbox: subscriptions on both backends see every write, the report
shows their section, and the lookup verdict stands apart from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.helpers import AI_CONTEXT, final_counts, read_hdr, run_locust
from tests.seed.helpers import run_seed

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_both_inboxes_see_every_write(seeded_sandbox: dict, tmp_path: Path) -> None:
    env = dict(seeded_sandbox["env"])
    prefix = tmp_path / "run"
    targets = ["supabase_rest", "convex_http", "convex_sub", "supabase_realtime"]
    try:
        p = run_locust(
            ["-f", AI_CONTEXT, "--headless", "-u", "12", "-r", "12", "-t", "12s", "--warmup", "1", "--csv", str(prefix),
             "--json-file", str(tmp_path / "final"), "--workload", str(seeded_sandbox["workload"]),
             "--targets", *targets, "--realtime-rate", "5", "--subscribers-per-workspace", "3", "--write-weight", "0",
             "--no-verdict-exit-code"],
            env, tmp_path, timeout=120,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        counts = final_counts(tmp_path / "final.json")
        for target in ("convex_sub", "supabase_realtime"):
            updates, failures = counts[("realtime", target)]
            assert updates > 0 and failures == 0, (target, updates, failures)
            writes, write_failures = counts[("write", target)]
            assert writes > 0 and write_failures == 0
        delivery = read_hdr(prefix)["metadata"]["realtime"]["delivery"]
        for target in ("convex_sub", "supabase_realtime"):
            d = delivery[target]
            assert d["subscribers"] == 3 and d["expected"] > 0, d
            assert d["missed"] == 0 and d["seen"] == d["expected"], d

        out = tmp_path / "report"
        rep = subprocess.run([sys.executable, "-m", "reports", "decide", str(prefix), "--out", str(out), "--no-charts",
                              "--min-samples", "10"], capture_output=True, text=True, timeout=120)
        decision = json.loads((out / "decision.json").read_text())
        assert rep.returncode == decision["exit_code"], rep.stderr
        realtime = decision["decisions"]["realtime"]
        assert set(realtime) == {"convex_sub", "supabase_realtime"}
        assert all(r["updates"] > 0 and r["missed"] == 0 and r["p95_ms"]["estimate"] > 0 for r in realtime.values())
        # the verdict is the lookups': the realtime rows are not among the decided targets
        assert {t["target"] for t in decision["decisions"]["direct"]["targets"]} == {"supabase_rest", "convex_http"}
        assert "## Realtime (inbox)" in (out / "decision.md").read_text()
    finally:
        cleaned = run_seed(env, "cleanup", cwd=tmp_path)  # the writers' marked rows, on both backends
        assert cleaned.returncode == 0, cleaned.stderr
