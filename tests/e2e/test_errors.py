"""The errors a newcomer meets first are one clear line: Python or Node missing
or too old, no .env, a .env lacking a variable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.settings import ALIASES, NAMES

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
# Targets' dependency stamps are not remade from tests (`make -o`): the suite
# already runs inside the installed environment.
NO_REMAKE = ["-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o", "nextjs/node_modules/.stamp"]

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any project setting (they would mask the .env under test)."""
    names = set(NAMES) | {alias for aliases in ALIASES.values() for alias in aliases}
    env = {k: v for k, v in os.environ.items() if k not in names and k not in {"ENV_FILE", "MAKEFLAGS", "MAKELEVEL"}}
    env.update(extra)
    return env


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), *NO_REMAKE, *args],
        capture_output=True, text=True, env=env or _clean_env(), timeout=120, check=False,
    )


def _fake(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def _path_with_node(tmp_path: Path) -> str:
    node = shutil.which("node")
    assert node, "node is needed for this test"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "node").symlink_to(node)
    npm = shutil.which("npm")
    if npm:
        (bindir / "npm").symlink_to(npm)
    return str(bindir)


def test_python_missing(tmp_path: Path) -> None:
    result = make("check-tools", f"PYTHON={tmp_path / 'no-such-python'}",
                  env=_clean_env(PATH=_path_with_node(tmp_path)))
    assert result.returncode != 0
    assert "not found; install Python 3.11 or newer" in result.stderr


def test_python_too_old(tmp_path: Path) -> None:
    # answers the version check with "too old" and reports itself as 3.9.18
    old = _fake(tmp_path, "python3", 'case "$2" in *platform*) echo 3.9.18;; *) exit 1;; esac\n')
    result = make("check-tools", f"PYTHON={old}", env=_clean_env(PATH=_path_with_node(tmp_path)))
    assert result.returncode != 0
    assert "Python 3.11 or newer is required" in result.stderr
    assert "3.9.18" in result.stderr


def test_node_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = make("check-tools", f"PYTHON={sys.executable}", env=_clean_env(PATH=str(empty)))
    assert result.returncode != 0
    assert "node not found; install Node.js 20.9 or newer" in result.stderr


def test_node_too_old(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake(bindir, "node", 'if [ "$1" = "--version" ]; then echo v18.19.0; else exit 1; fi\n')
    result = make("check-tools", f"PYTHON={sys.executable}", env=_clean_env(PATH=str(bindir)))
    assert result.returncode != 0
    assert "Node.js 20.9 or newer is required, node is v18.19.0" in result.stderr


def test_tools_present() -> None:
    result = make("check-tools", f"PYTHON={sys.executable}")
    assert result.returncode == 0, result.stderr


def test_run_without_env_file(tmp_path: Path) -> None:
    result = make("run", f"PY={sys.executable}", f"ENV_FILE={tmp_path / 'missing.env'}")
    assert result.returncode != 0
    assert "missing.env not found; copy .env.example to .env" in result.stderr


def test_run_with_env_file_lacking_a_variable(tmp_path: Path) -> None:
    env_file = tmp_path / "partial.env"
    # a pinned phone, so no workload file is needed; no Supabase or Convex URL
    env_file.write_text(
        "CRM_API_KEY=k\nTEST_WORKSPACE_ID=00000000-0000-4000-8000-000000000000\nTEST_PHONE=6281234567890\n"
    )
    result = make("run", f"PY={sys.executable}", f"ENV_FILE={env_file}", "RUN_DURATION=2", f"RUNS={tmp_path}")
    assert result.returncode != 0
    assert "SUPABASE_URL is not set" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
