"""docker/compose_env.py as a user runs it: it writes .env itself, with hex
secrets, and never replaces the secrets a stack's volumes were created with.

The script runs from a copy of the repository's layout (its docker/ and
docker-compose.yml) so that it never touches this checkout's .env or keys.
There is no Docker engine here: the installed Docker CLI (when there is one)
shows the "daemon not reachable" path, and a stand-in `docker` that answers
`docker volume inspect` the way the CLI does shows the others."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "crm-latency-spike"  # docker-compose.yml `name:`
HEX = re.compile(r"[0-9a-f]{48,}")

# Answers `docker volume inspect --format {{.Name}} NAME` like the Docker CLI:
# the name and exit 0 for a volume in FAKE_DOCKER_VOLUMES, the daemon's "no
# such volume" error and exit 1 otherwise; logs every call.
FAKE_DOCKER = f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] != ["volume", "inspect"]:
    sys.exit(2)
name = args[-1]
if name in os.environ.get("FAKE_DOCKER_VOLUMES", "").split(","):
    print(name)
    sys.exit(0)
print(f"Error response from daemon: get {{name}}: no such volume", file=sys.stderr)
sys.exit(1)
"""


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A copy of what compose_env.py reads: its own file and docker-compose.yml."""
    (tmp_path / "repo" / "docker").mkdir(parents=True)
    shutil.copy(ROOT / "docker" / "compose_env.py", tmp_path / "repo" / "docker" / "compose_env.py")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "repo" / "docker-compose.yml")
    return tmp_path / "repo"


def _fake_docker(tmp_path: Path, volumes: list[str]) -> dict[str, str]:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    return {"PATH": str(bin_dir), "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"), "FAKE_DOCKER_VOLUMES": ",".join(volumes)}


def run(repo: Path, *args: str, env: dict[str, str], shell: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {"HOME": str(repo.parent), "LANG": "C.UTF-8"}
    argv = [sys.executable, "docker/compose_env.py", *args]
    if shell is not None:
        argv = ["/bin/sh", "-c", shell.replace("PYTHON", sys.executable)]
    return subprocess.run(argv, cwd=repo, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


# What compose_env.py adds to a .env an earlier version wrote (Supabase Realtime's).
ADDED_LATER = ("REALTIME_DB_ENC_KEY", "REALTIME_SECRET_KEY_BASE", "REALTIME_DASHBOARD_PASSWORD", "SUPABASE_JWKS")


def _as_before_realtime(path: Path) -> str:
    """The .env as compose_env.py wrote it before the stack had Realtime."""
    text = "".join(line for line in path.read_text().splitlines(keepends=True)
                   if line.split("=", 1)[0] not in ADDED_LATER)
    path.write_text(text)
    return text


def test_fresh_env_has_hex_secrets_and_is_private(repo: Path, tmp_path: Path) -> None:
    result = run(repo, env=_fake_docker(tmp_path, []))
    assert result.returncode == 0, result.stderr
    env_path = repo / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    values = dotenv(env_path)
    for name in ("CRM_API_KEY", "SUPABASE_JWT_SECRET", "POSTGRES_PASSWORD", "CONVEX_INSTANCE_SECRET"):
        assert HEX.fullmatch(values[name]), name
    assert values["SUPABASE_URL"] == "http://127.0.0.1:54321" and values["CONVEX_ADMIN_KEY"] == ""
    # Docker was asked about both volumes that hold the secrets, under the compose project's name.
    asked = (tmp_path / "docker.log").read_text().split("\n")
    assert f"volume inspect --format {{{{.Name}}}} {PROJECT}_db-data" in asked
    assert f"volume inspect --format {{{{.Name}}}} {PROJECT}_convex-data" in asked
    # Nothing secret on the terminal, one line on stderr.
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    for name in ("POSTGRES_PASSWORD", "CRM_API_KEY", "CONVEX_INSTANCE_SECRET"):
        assert values[name] not in result.stderr
    # Realtime's: hex, and the JWKS as JSON that both readers of .env agree on.
    assert re.fullmatch(r"[0-9a-f]{16}", values["REALTIME_DB_ENC_KEY"])
    for name in ("REALTIME_SECRET_KEY_BASE", "REALTIME_DASHBOARD_PASSWORD"):
        assert HEX.fullmatch(values[name]), name
    parsed = dotenv_values(env_path)
    jwks = json.loads(parsed["SUPABASE_JWKS"] or "")
    assert jwks == json.loads(base64.b64decode((parsed["SUPABASE_JWKS_URL"] or "").split(",", 1)[1]))


def test_refuses_to_replace_a_stack_env(repo: Path, tmp_path: Path) -> None:
    env = _fake_docker(tmp_path, [])
    assert run(repo, env=env).returncode == 0
    before = (repo / ".env").read_bytes()
    result = run(repo, env=env)
    assert result.returncode == 1
    assert (repo / ".env").read_bytes() == before
    (line,) = result.stderr.strip().splitlines()
    assert "POSTGRES_PASSWORD and CONVEX_INSTANCE_SECRET" in line and "docker compose down -v" in line and "--force" in line


def test_force_still_refuses_while_the_volumes_exist(repo: Path, tmp_path: Path) -> None:
    assert run(repo, env=_fake_docker(tmp_path, [])).returncode == 0
    before = (repo / ".env").read_bytes()
    result = run(repo, "--force", env=_fake_docker(tmp_path, [f"{PROJECT}_db-data", f"{PROJECT}_convex-data"]))
    assert result.returncode == 1
    assert (repo / ".env").read_bytes() == before
    assert f"{PROJECT}_db-data, {PROJECT}_convex-data" in result.stderr and "docker compose down -v" in result.stderr


def test_force_after_the_volumes_are_gone_writes_new_secrets(repo: Path, tmp_path: Path) -> None:
    env = _fake_docker(tmp_path, [])
    assert run(repo, env=env).returncode == 0
    old = dotenv(repo / ".env")
    result = run(repo, "--force", env=env)
    assert result.returncode == 0, result.stderr
    new = dotenv(repo / ".env")
    assert new["POSTGRES_PASSWORD"] != old["POSTGRES_PASSWORD"]
    assert new["CONVEX_INSTANCE_SECRET"] != old["CONVEX_INSTANCE_SECRET"]


def test_a_lost_env_is_not_replaced_while_the_volumes_exist(repo: Path, tmp_path: Path) -> None:
    result = run(repo, env=_fake_docker(tmp_path, [f"{PROJECT}_db-data"]))
    assert result.returncode == 1
    assert not (repo / ".env").exists()
    assert f"volumes {PROJECT}_db-data exist" in result.stderr and "Restore that .env" in result.stderr


def test_the_shell_redirect_of_old_instructions_is_caught(repo: Path, tmp_path: Path) -> None:
    """`python docker/compose_env.py > .env` empties .env before the script runs."""
    env = _fake_docker(tmp_path, [])
    assert run(repo, env=env).returncode == 0
    result = run(repo, env=_fake_docker(tmp_path, [f"{PROJECT}_db-data"]), shell="PYTHON docker/compose_env.py > .env")
    assert result.returncode == 1
    assert "`> .env` emptied it" in result.stderr


def test_a_projects_other_env_is_left_alone(repo: Path, tmp_path: Path) -> None:
    hosted = "SUPABASE_URL=https://abc.supabase.co\nCONVEX_DEPLOYMENT=prod:happy-animal-123\n"
    (repo / ".env").write_text(hosted)
    result = run(repo, env=_fake_docker(tmp_path, []))
    assert result.returncode == 1
    assert (repo / ".env").read_text() == hosted
    assert "--env-file PATH" in result.stderr
    # ...and the stack's .env goes where asked instead.
    other = repo / ".env.compose"
    assert run(repo, "--env-file", str(other), env=_fake_docker(tmp_path, [])).returncode == 0
    assert HEX.fullmatch(dotenv(other)["POSTGRES_PASSWORD"])


def test_compose_project_name_picks_the_volumes(repo: Path, tmp_path: Path) -> None:
    env = {**_fake_docker(tmp_path, ["bench2_db-data"]), "COMPOSE_PROJECT_NAME": "bench2"}
    result = run(repo, env=env)
    assert result.returncode == 1 and "bench2_db-data" in result.stderr


def test_docker_without_a_daemon_is_unknown_not_absent(repo: Path, tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no Docker CLI installed")
    probe = subprocess.run([docker, "volume", "inspect", "x"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode == 0 or "no such volume" in probe.stderr.lower():
        pytest.skip("a Docker daemon answers here")
    result = run(repo, env={"PATH": str(Path(docker).parent)})
    assert result.returncode == 0, result.stderr
    assert "Docker could not say whether volumes of crm-latency-spike exist" in result.stderr
    assert "docker compose down -v" in result.stderr


def test_without_docker_it_writes_and_says_what_it_could_not_check(repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run(repo, env={"PATH": str(empty)})
    assert result.returncode == 0, result.stderr
    assert "could not say" in result.stderr and (repo / ".env").exists()


def test_moved_ports_reach_the_urls_and_compose(repo: Path, tmp_path: Path) -> None:
    env = {**_fake_docker(tmp_path, []), "SUPABASE_PORT": "55321", "CONVEX_PORT": "3310"}
    assert run(repo, env=env).returncode == 0
    values = dotenv(repo / ".env")
    assert values["SUPABASE_URL"] == "http://127.0.0.1:55321" and values["SUPABASE_PORT"] == "55321"
    assert values["CONVEX_URL"] == "http://127.0.0.1:3310" and values["CONVEX_PORT"] == "3310"
    assert "DB_PORT" not in values  # defaults stay docker-compose.yml's


def test_a_bad_port_is_one_line_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    result = run(repo, env={**_fake_docker(tmp_path, []), "DB_PORT": "543a"})
    assert result.returncode == 1
    assert result.stderr.strip() == "compose_env: DB_PORT='543a' is not a TCP port (1-65535)"
    assert not (repo / ".env").exists()


def test_member_token_subcommand_still_prints_a_token(repo: Path, tmp_path: Path) -> None:
    result = run(repo, "token", "00000000-0000-4000-8000-000000000001", env={"PATH": os.defpath})
    assert result.returncode == 0
    assert re.fullmatch(r"CONVEX_AUTH_TOKEN=[\w-]+\.[\w-]+\.[\w-]+\n", result.stdout)


def test_update_adds_what_an_older_env_lacks_and_keeps_every_line(repo: Path, tmp_path: Path) -> None:
    assert run(repo, env=_fake_docker(tmp_path, [])).returncode == 0
    env_path = repo / ".env"
    before = _as_before_realtime(env_path)
    # A running stack: its volumes exist. --update changes none of the secrets they hold.
    volumes = _fake_docker(tmp_path, [f"{PROJECT}_db-data", f"{PROJECT}_convex-data"])
    refused = run(repo, env=volumes)
    assert refused.returncode == 1 and "lacks REALTIME_DB_ENC_KEY" in refused.stderr
    assert "`python docker/compose_env.py --update` adds" in refused.stderr
    result = run(repo, "--update", env=volumes)
    assert result.returncode == 0, result.stderr
    after = env_path.read_text()
    assert after.startswith(before)
    added = dotenv(env_path)
    assert [line.split("=", 1)[0] for line in after[len(before):].splitlines()] == list(ADDED_LATER)
    assert re.fullmatch(r"[0-9a-f]{16}", added["REALTIME_DB_ENC_KEY"])
    # The JWKS added is the one this .env already gives Convex.
    parsed = dotenv_values(env_path)
    assert json.loads(parsed["SUPABASE_JWKS"] or "") == json.loads(
        base64.b64decode((parsed["SUPABASE_JWKS_URL"] or "").split(",", 1)[1]))
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    for name in ADDED_LATER[:3]:
        assert added[name] not in result.stderr
    # Up to date now: a second --update changes nothing.
    again = run(repo, "--update", env=volumes)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert env_path.read_text() == after


def test_update_refuses_an_env_that_is_not_the_stacks(repo: Path, tmp_path: Path) -> None:
    hosted = "SUPABASE_URL=https://abc.supabase.co\nCONVEX_DEPLOYMENT=prod:happy-animal-123\n"
    (repo / ".env").write_text(hosted)
    result = run(repo, "--update", env=_fake_docker(tmp_path, []))
    assert result.returncode == 1
    assert (repo / ".env").read_text() == hosted
    (line,) = result.stderr.strip().splitlines()
    assert "not the docker-compose stack's (no POSTGRES_PASSWORD)" in line
    (repo / ".env").unlink()
    missing = run(repo, "--update", env=_fake_docker(tmp_path, []))
    assert missing.returncode == 1 and "does not exist or is empty" in missing.stderr
    assert not (repo / ".env").exists()


def test_update_and_force_do_not_mix(repo: Path, tmp_path: Path) -> None:
    result = run(repo, "--update", "--force", env=_fake_docker(tmp_path, []))
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    assert not (repo / ".env").exists()


def test_token_needs_a_user_or_a_workspace(repo: Path) -> None:
    result = run(repo, "token", env={"PATH": os.defpath})
    assert result.returncode == 2 and "give either a user id or --workspace" in result.stderr
    both = run(repo, "token", "00000000-0000-4000-8000-000000000001", "--workspace", env={"PATH": os.defpath})
    assert both.returncode == 2
