"""``python -m reports diagnose``: bad input is one line and exit 2, never a traceback or a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WS = "6513270e-269e-4d37-b2a7-4de452e6b438"


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return subprocess.run(
        [sys.executable, "-m", "reports", "diagnose", *args], cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def workload(tmp_path: Path) -> Path:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps({
        "format": "crm-workload/1",
        "workspaces": [{"id": WS, "name": "Eagle Overseas", "member_user_id": "b2f14c94-2e05-419a-8b5c-74273f98e277"}],
        "known": [{"workspace_id": WS, "phone": "6281110014609", "weight": 1}], "unknown": [],
    }))
    return path


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_nothing_configured(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, {}, "--workload", str(workload(tmp_path))))
    assert "nothing to diagnose" in line and "SUPABASE_URL" in line and "DATABASE_URL" in line


def test_samples_must_be_positive(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, {}, "--samples", "0"))
    assert "--samples must be at least 1, got 0" in line


def test_missing_workload(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"},
                              "--workload", str(tmp_path / "nope.json")))
    assert "nope.json: workload file not found" in line


def test_via_database_needs_database_url(tmp_path: Path) -> None:
    env = {"SUPABASE_URL": "http://127.0.0.1:1", "SUPABASE_ANON_KEY": "anon"}
    line = one_line_error(run(tmp_path, env, "--workload", str(workload(tmp_path)), "--via", "database"))
    assert line.endswith("--via database needs DATABASE_URL")


def test_unreachable_database_names_the_host_never_the_password(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://diag:s3cr3t-pw@127.0.0.1:1/postgres"}
    proc = run(tmp_path, env, "--workload", str(workload(tmp_path)), "--timeout", "2")
    line = one_line_error(proc)
    assert "cannot connect to DATABASE_URL (127.0.0.1:1/postgres)" in line
    assert "s3cr3t" not in proc.stdout + proc.stderr


def test_bad_run_artifact(tmp_path: Path) -> None:
    (tmp_path / "r_hdr.json").write_text("{not json")
    env = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"}
    line = one_line_error(run(tmp_path, env, "--workload", str(workload(tmp_path)), "--run", str(tmp_path / "r")))
    assert "r_hdr.json" in line and "not valid JSON" in line


@pytest.mark.parametrize("args", [["--via", "nope"], ["--samples", "x"]])
def test_usage_errors(tmp_path: Path, args: list[str]) -> None:
    line = one_line_error(run(tmp_path, {}, *args))
    assert "python -m reports diagnose: error:" in line
