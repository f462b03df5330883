"""Shared fixtures. ``sandbox_env``: the local stack (real PostgreSQL, gateway,
Convex runtime); ``app_env``: the same with the Next.js app; ``seeded_sandbox``:
the stack holding the seed's small dataset in Supabase and Convex.

The stack's ports are fixed (54321, 3210, 3211, 3000), so a stack already running
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
def app_env(sandbox_env: dict[str, str]) -> dict[str, str]:
    """The sandbox env with the Next.js app's (``APP_URL``, ``CRM_API_KEY``): the app
    is started once per session (built first when its sources changed)."""
    from sandbox import launcher
    from sandbox.services import CONVEX_RUNTIME

    state = Path(sandbox_env["SANDBOX_DIR"])
    # the app's Convex settings come from the Convex service, so it is named too
    services = ["postgres", "supabase", *(["convex"] if CONVEX_RUNTIME.exists() else []), "nextjs"]
    try:
        env = launcher.up(services, state)
    except launcher.LauncherError as exc:
        pytest.fail(f"the Next.js app did not start: {exc}")
    assert env.get("APP_URL") == "http://127.0.0.1:3000", "the sandbox left the Next.js app out (see the notice above)"
    return {**sandbox_env, **env}


@pytest.fixture(scope="session")
def seeded_sandbox(sandbox_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sandbox holding the seed's small dataset (300 contacts, seed 4242) in
    Supabase and Convex: ``{"env", "workload" (its workload.json), "workspace_id"}``.
    A seed step that fails fails the tests that use it."""
    from tests.seed.helpers import seed_sandbox

    assert sandbox_env.get("CONVEX_URL"), "the sandbox started without its Convex runtime"
    try:
        return seed_sandbox(sandbox_env, tmp_path_factory.mktemp("seeded"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
