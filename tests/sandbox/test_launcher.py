"""The launcher's contract: env file, idempotent up, status, port conflicts, CLI, non-root PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import jwt
import pytest

from sandbox import launcher
from sandbox.services import ROOT
from tests.netns import netns_prefix

pytestmark = pytest.mark.sandbox


def test_env_file_holds_the_contract(sandbox_env: dict[str, str]) -> None:
    state = Path(sandbox_env["SANDBOX_DIR"])
    env = launcher.read_env(state)
    assert env["SUPABASE_URL"] == "http://127.0.0.1:54321"
    assert env["DATABASE_URL"].startswith("postgresql://")
    secret = env["SUPABASE_JWT_SECRET"]
    for name, role in (("SUPABASE_ANON_KEY", "anon"), ("SUPABASE_SERVICE_ROLE_KEY", "service_role")):
        claims = jwt.decode(env[name], secret, algorithms=["HS256"])
        assert claims["role"] == role
    assert oct((state / "env").stat().st_mode & 0o777) == "0o600"
    assert oct((state / "keys").stat().st_mode & 0o777) == "0o700"
    assert (state / "logs" / "supabase.log").exists()


def test_up_is_idempotent_and_status(sandbox_env: dict[str, str]) -> None:
    state = Path(sandbox_env["SANDBOX_DIR"])
    pid_before = (state / "supabase.pid").read_text()
    again = launcher.up(["postgres", "supabase"], state)
    assert (state / "supabase.pid").read_text() == pid_before
    for key in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_JWT_SECRET", "DATABASE_URL"):
        assert again[key] == sandbox_env[key]
    status = launcher.status(state)
    assert status["postgres"] and status["supabase"]


def test_cli_env_prints_the_file(sandbox_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "env"],
        cwd=ROOT,
        env={**os.environ, "SANDBOX_DIR": sandbox_env["SANDBOX_DIR"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == (Path(sandbox_env["SANDBOX_DIR"]) / "env").read_text()


def test_port_taken_is_one_clear_line(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    """Another stack's `up` stops at the taken port, and stops the PostgreSQL it started for it."""
    other = tmp_path / "other"
    try:
        with pytest.raises(launcher.LauncherError) as err:
            launcher.up(["supabase"], other)
        message = str(err.value)
        assert "54321" in message and "taken" in message and "\n" not in message
        # the embedded PostgreSQL this `up` started for the gateway is stopped again (an external one is not ours)
        running = {name for name, ok in launcher.status(other).items() if ok}
        assert running == ({"postgres"} if os.environ.get("DATABASE_URL") else set())
    finally:
        stopped = launcher.down(other)
    assert stopped == []
    # the running stack was not touched
    assert httpx.get("http://127.0.0.1:54321/health").status_code == 200


def test_down_on_empty_state_stops_nothing(tmp_path: Path) -> None:
    assert launcher.down(tmp_path / "never-started") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root path: PostgreSQL run as an unprivileged user")
def test_embedded_postgres_as_root_and_as_a_normal_user() -> None:
    from sandbox.postgres import PG_USER, Postgres

    tmp_path = Path(tempfile.mkdtemp(prefix="sandbox-pg-test-"))  # outside pytest's prunable basetemp
    try:
        _root_and_user(tmp_path, Postgres, PG_USER)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _root_and_user(tmp_path: Path, Postgres: type, PG_USER: str) -> None:

    pg = Postgres(tmp_path / "as-root")
    pg.start()
    try:
        owner = subprocess.run(["ps", "-o", "user=", "-p", str(pg.pid())], capture_output=True, text=True).stdout.strip()
        assert owner in (PG_USER, "nobody")
    finally:
        pg.stop()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not available")
    home = tmp_path / "as-user"
    home.mkdir()
    shutil.chown(home, "nobody")
    os.chmod(tmp_path, 0o755)
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); from sandbox.postgres import Postgres; "
        "p = Postgres(Path(sys.argv[1])); p.start(); ok = p.is_running(); p.stop(); print(ok)"
    )
    nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout.strip()
    result = subprocess.run(
        ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", sys.executable, "-c", code,
         str(home / "state"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
    )
    assert result.stdout.strip() == "True", result.stderr[-500:]


def test_convex_deployment_env(sandbox_env: dict[str, str]) -> None:
    if "CONVEX_URL" not in sandbox_env:
        pytest.skip("the Convex runtime is not part of this stack")
    state = Path(sandbox_env["SANDBOX_DIR"])
    deployment = json.loads((state / "convex" / "deployment-env.json").read_text())
    assert deployment == {
        "CRM_API_KEY": sandbox_env["CRM_API_KEY"],
        "SUPABASE_JWT_ISSUER": "http://127.0.0.1:54321/auth/v1",
        "SUPABASE_JWKS_URL": "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json",
    }
    assert sandbox_env["CONVEX_URL"] == "http://127.0.0.1:3210"
    assert sandbox_env["CONVEX_SITE_URL"] == "http://127.0.0.1:3211"
    assert httpx.get("http://127.0.0.1:3210/version").status_code == 200
    jwks = httpx.get(deployment["SUPABASE_JWKS_URL"]).json()
    assert jwks == json.loads((state / "keys" / "jwks.json").read_text())


def test_missing_npm_packages_is_one_line_naming_make_deps(tmp_path: Path) -> None:
    """`python -m sandbox up` from a checkout without node_modules: one line saying what to run, nothing left running."""
    prefix = netns_prefix()
    if prefix is None:
        pytest.skip("needs a private network namespace (the Convex ports may be taken by a running sandbox)")
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "sandbox", checkout / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "package.json", checkout / "package.json")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SANDBOX_DIR")}
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "sandbox", "up", "--services", "convex"],
        cwd=checkout,
        # the copy's sandbox package first (its root is the checkout); the rest of the project from here
        env={**env, "SANDBOX_DIR": str(state), "PYTHONPATH": os.pathsep.join([str(checkout), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    packages = ", ".join(json.loads((ROOT / "package.json").read_text())["dependencies"])  # convex, esbuild
    assert result.stderr.splitlines() == [
        f"error: convex: the npm packages {packages} are not installed; run `make deps`"
    ], result.stderr
    assert result.stdout == ""
    assert not (state / "convex.pid").exists()
