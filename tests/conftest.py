"""Shared fixtures. ``sandbox_env``: the local stack (real PostgreSQL + gateway).

The stack's ports are fixed (54321, 3210, 3211), so a stack already running
from the default ``.sandbox`` is reused as is; otherwise one is started in a
temporary state dir for the session and stopped at its end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sandbox_env() -> Iterator[dict[str, str]]:
    """The sandbox env (SUPABASE_URL, keys, DATABASE_URL, ...), plus SANDBOX_DIR."""
    from sandbox import launcher
    from sandbox.services import CONVEX_RUNTIME

    wanted = ["postgres", "supabase"] + (["convex"] if CONVEX_RUNTIME.exists() else [])
    default = launcher.state_dir_of(None)
    if default.exists():
        running = launcher.status(default)
        if all(running.get(name) for name in wanted):
            env = launcher.read_env(default)
            if env.get("SUPABASE_URL"):
                yield {**env, "SANDBOX_DIR": str(default)}
                return
    # Not under pytest's basetemp: concurrent pytest sessions prune old basetemps,
    # which would delete a running database's files.
    state = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    try:
        env = launcher.up(wanted, state)
    except launcher.LauncherError as exc:
        launcher.down(state)
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(f"sandbox did not start: {exc}")
    try:
        yield {**env, "SANDBOX_DIR": str(state)}
    finally:
        launcher.down(state)
        shutil.rmtree(state, ignore_errors=True)
