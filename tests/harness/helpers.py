"""Running Locust as a real subprocess (as users do), bounded in time."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).with_name("locust"))
AI_CONTEXT = str(ROOT / "locustfiles" / "ai_context.py")
STEP_SHAPE = str(ROOT / "locustfiles" / "step_shape.py")


def locust_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "SUPABASE_", "CONVEX_", "NEXT_PUBLIC_"))}
    for k in ("APP_URL", "CRM_API_KEY", "TEST_WORKSPACE_ID", "TEST_PHONE", "ENV_FILE", "DATABASE_URL"):
        env.pop(k, None)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_locust(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCUST, *args], env=locust_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def read_stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}


def read_hdr(prefix: Path) -> dict[str, Any]:
    return json.loads(Path(f"{prefix}_hdr.json").read_text())


def final_counts(json_path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, name) -> (requests, failures) from Locust's --json-file (computed at shutdown)."""
    rows = json.loads(json_path.read_text())
    return {(r["method"], r["name"]): (r["num_requests"], r["num_failures"]) for r in rows}
