"""Shared fixtures. ``sandbox_env``: the local stack (real PostgreSQL + gateway).

The stack's ports are fixed (54321, 3210, 3211), so a stack already running
from the default ``.sandbox`` is reused as is; otherwise one is started in a
temporary state dir for the session and stopped at its end.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
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
        if running.get("postgres") and running.get("supabase"):
            # the developer's own stack: reused, completed if a wanted service is missing, left running
            env = launcher.up(wanted, default) if not all(running.get(n) for n in wanted) else launcher.read_env(default)
            if env.get("SUPABASE_URL"):
                yield {**env, "SANDBOX_DIR": str(default)}
                return
    # Test sessions that start their own stack take turns: the ports are fixed.
    lock = open(Path(tempfile.gettempdir()) / "sandbox-tests.lock", "w")  # noqa: SIM115 - held for the session
    deadline = time.monotonic() + 1200  # a shared machine: other sessions may hold the ports a while
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail("another test session has held the sandbox ports for 20 minutes")
            time.sleep(0.5)
    # Not under pytest's basetemp: concurrent pytest sessions prune old basetemps,
    # which would delete a running database's files.
    state = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    try:
        env = launcher.up(wanted, state)
    except launcher.LauncherError as exc:
        launcher.down(state)
        shutil.rmtree(state, ignore_errors=True)
        lock.close()
        pytest.fail(f"sandbox did not start: {exc}")
    try:
        yield {**env, "SANDBOX_DIR": str(state)}
    finally:
        launcher.down(state)
        shutil.rmtree(state, ignore_errors=True)
        lock.close()


@pytest.fixture(scope="session")
def seeded_sandbox(sandbox_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The sandbox holding the seed's small dataset (300 contacts, seed 4242) in
    Supabase and Convex: ``{"env", "workload" (its workload.json), "workspace_id"}``."""
    from tests.seed.helpers import seed_sandbox

    if not sandbox_env.get("CONVEX_URL"):
        pytest.skip("the sandbox has no Convex runtime")
    yield seed_sandbox(sandbox_env, tmp_path_factory.mktemp("seeded"))
