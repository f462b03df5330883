"""`make demo`'s pipeline end to end with a short run: sandbox up, seed,
migrate, verify, the load on every target, the decision files, sandbox down.

Run in a private network namespace when possible (its own 127.0.0.1, so the
fixed sandbox ports cannot clash with a stack already running on this machine);
otherwise it reuses the session's sandbox and leaves it running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.services import CONVEX_RUNTIME
from tests.netns import netns_prefix

from .test_errors import MAKE, NO_REMAKE, ROOT, _clean_env

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.skipif(MAKE is None, reason="make is not installed")]

SANDBOX_BANNER = "not a verdict on hosted Supabase or Convex"
# `python -m reports decide`'s exit code for each verdict (reports/README.md)
VERDICT_EXIT_CODES = {"GO": 0, "OPTIMISE SUPABASE": 10, "INCONCLUSIVE": 11}


def test_demo_pipeline(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert MAKE is not None
    out, runs = tmp_path / "report", tmp_path / "runs"
    env = _clean_env()
    argv = [
        MAKE, "--no-print-directory", "-C", str(ROOT), *NO_REMAKE, "demo-run",
        f"PY={sys.executable}", "DEMO_CONTACTS=300", "DEMO_DURATION=15", "DEMO_USERS=14",
        "DEMO_SPAWN_RATE=14", "DEMO_WARMUP=2", f"DEMO_OUT={out}", f"DEMO_RUNS={runs}",
    ]
    prefix = netns_prefix()
    if prefix is not None:
        state = tmp_path / "sandbox"
        env["SANDBOX_DIR"] = str(state)
        argv = [*prefix, *argv]
    else:
        sandbox_env = request.getfixturevalue("sandbox_env")
        state = Path(sandbox_env["SANDBOX_DIR"])
        env["SANDBOX_DIR"] = str(state)
        argv.append("DEMO_KEEP_SANDBOX=1")

    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=480, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # the load ran and wrote its artifacts
    (run,) = runs.iterdir()
    for name in ("run_stats.csv", "run_stats_history.csv", "run_failures.csv", "run_hdr.json", "workload.json"):
        assert (run / name).is_file(), name
    hdr = json.loads((run / "run_hdr.json").read_text())
    assert hdr["metadata"]["sandbox"] is True
    measured = {e["name"] for e in hdr["entries"] if e["type"] == "lookup" and e["count"] > 0}
    assert {"supabase_rest", "supabase_nested", "supabase_rpc", "api_supabase"} <= measured

    if prefix is not None:
        assert "stopping the sandbox" in output
        assert not (state / "nextjs.pid").exists(), "the sandbox was not stopped"

    if not CONVEX_RUNTIME.exists():
        assert "no decision: it needs a Convex target" in output
        return

    assert {"convex_http", "convex_query", "api_convex"} <= measured
    for name in ("decision.md", "decision.json", "report.html"):
        assert (out / name).is_file(), name
    decision = json.loads((out / "decision.json").read_text())
    # The numbers, and so the verdict, are this machine's; what the demo reports must be one verdict,
    # the direct backends' (they decide), stated alike in decision.json, decision.md and the terminal.
    verdict, exit_code = decision["verdict"], decision["exit_code"]
    assert (verdict, exit_code) in VERDICT_EXIT_CODES.items(), (verdict, exit_code)
    direct = decision["decisions"]["direct"]
    assert (direct["level"], direct["verdict"], direct["exit_code"]) == ("direct", verdict, exit_code)
    assert {t["target"] for t in direct["targets"]} == {"supabase_rest", "supabase_nested", "supabase_rpc",
                                                         "convex_http", "convex_query"}
    assert {t["target"] for t in decision["decisions"]["api"]["targets"]} == {"api_supabase", "api_convex"}
    assert decision["run"]["sandbox"] is True
    assert f"VERDICT: {verdict} (exit {exit_code})" in result.stdout
    assert f"**Verdict: {verdict}** (exit code {exit_code})" in (out / "decision.md").read_text()
    assert SANDBOX_BANNER in (out / "decision.md").read_text().replace("\n", " ")
    assert SANDBOX_BANNER in output
    assert "supabase_rest" in result.stdout and "convex_http" in result.stdout
    # The diagnosis runs before the decision, on the same run, and the report carries its findings.
    diagnosis = json.loads((out / "diagnosis.json").read_text())
    assert diagnosis["samples"]["phones"] == 20 and diagnosis["run"] == str(run / "run")
    assert not diagnosis["failures"] and not diagnosis["checks_skipped"]
    assert "== diagnosis" in result.stdout and f"{len(diagnosis['findings'])} finding(s)" in result.stdout
    if diagnosis["findings"]:
        assert "### Findings (python -m reports diagnose)" in (out / "decision.md").read_text()
