"""Seeding the sandbox for tests (used by the ``seeded_sandbox`` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SEED = 4242
CONTACTS = 300


def run_seed(
    env: dict[str, str], *argv: str, cwd: Path, extra: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m seed …`` as a user runs it, with exactly the sandbox's settings."""
    keep = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    }
    full = {
        **keep,
        **{k: v for k, v in env.items() if k != "SANDBOX_DIR"},
        "PYTHONPATH": str(ROOT),
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "seed", "-q", *argv],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def seed_sandbox(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Generate the small dataset, migrate Supabase to Convex, and write the dataset's workload.json;
    RuntimeError (with the seed's error) when a step fails."""
    from seed.generate import generate

    workspace = generate(CONTACTS, SEED).workspaces[0]["id"]
    steps = [
        ("generate", "--contacts", str(CONTACTS), "--seed", str(SEED)),
        # --clear: Convex becomes a copy of Supabase whatever earlier tests left in either
        ("migrate", "--clear", "--restart", "--checkpoint", str(workdir / "cp.json")),
        ("workload", "--out", str(workdir / "workload.json"), "--workspace", workspace),
    ]
    for argv in steps:
        proc = run_seed(env, *argv, cwd=workdir, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"seed {argv[0]} failed: {proc.stderr.strip()[-500:]}")
    return {"env": env, "workload": workdir / "workload.json", "workspace_id": workspace}
