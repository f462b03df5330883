"""`make run` against a stack (the sandbox standing in for a team's deployments): a run that cannot
measure what it claims stops with one line and a non-zero exit, and leaves no empty run folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .test_errors import MAKE, _clean_env, make

pytestmark = [pytest.mark.sandbox, pytest.mark.skipif(MAKE is None, reason="make is not installed")]


def _env_file(path: Path, env: dict[str, str], **override: str) -> Path:
    values = {k: v for k, v in env.items() if k != "SANDBOX_DIR"} | override
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def test_make_run_with_a_wrong_crm_api_key_stops_before_the_run(seeded_sandbox: dict, tmp_path: Path) -> None:
    env_file = _env_file(tmp_path / "wrong.env", seeded_sandbox["env"], CRM_API_KEY="not-the-key")
    runs = tmp_path / "runs"
    result = make("run", f"PY={sys.executable}", f"ENV_FILE={env_file}", f"WORKLOAD={seeded_sandbox['workload']}",
                  f"RUNS={runs}", "RUN_DURATION=30", "RUN_USERS=2",
                  env=_clean_env(SANDBOX_DIR=seeded_sandbox["env"]["SANDBOX_DIR"]))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert errors[0].startswith("error: convex_http: the lookup's /contacts/by-phone request failed (HTTP 401")
    assert "check CRM_API_KEY" in errors[0] and "not-the-key" not in result.stdout + result.stderr
    assert errors[-1] == "error: the run did not start (exit 2): nothing was measured"
    assert "Traceback" not in result.stderr
    assert not list(runs.glob("run-*"))  # no empty run folder
