"""docker/convex-push.sh, the deploy one-shot's work, run with the project's
real Convex CLI (node_modules/convex) against a recording HTTP server on
loopback that stands where the self-hosted backend would be.

The server accepts the env-var updates and answers the deploy's first request
(`get_config_hashes`) with an error, which ends the run there: what is checked
is what reaches the backend, in which order, with which key and values, not
the push itself (that needs the backend image, which cannot run here). The
project sits in a copy with the team's `.env.local` naming a cloud deployment,
and CRM_API_KEY starts with "-"."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "convex-push.sh"
ADMIN_KEY = "convex-self-hosted|01" + "ab" * 40
ENV_LOCAL = "CONVEX_DEPLOYMENT=dev:happy-animal-123 # team: acme\nNEXT_PUBLIC_CONVEX_URL=https://happy-animal-123.convex.cloud\n"
JWKS_URL = "data:text/plain;charset=utf-8;base64,eyJrZXlzIjogW119"

pytestmark = pytest.mark.slow


def _pins() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", (ROOT / "docker" / "convex-versions.env").read_text(), flags=re.M))


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, object]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _record(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("authorization"),
                "body": json.loads(body) if body and self.headers.get("content-encoding") is None else body,
            }
        )
        if self.path == "/api/update_environment_variables":
            status, reply = 200, {}
        else:
            status, reply = 400, {"code": "RecordedOnly", "message": "this server only records requests"}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _record

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def backend() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def app(tmp_path: Path) -> Path:
    """What /app holds for the one-shot: convex/, package files, node_modules, the team's .env.local."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "convex" / "package.json").is_file():
        pytest.skip("needs node and node_modules (make deps)")
    app = tmp_path / "app"
    app.mkdir()
    shutil.copytree(ROOT / "convex", app / "convex", ignore=shutil.ignore_patterns("node_modules"))
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / name, app / name)
    (app / "node_modules").symlink_to(ROOT / "node_modules")
    (app / ".env.local").write_text(ENV_LOCAL)
    (app / "docker").mkdir()
    return app


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _run(app: Path, tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmpdir),
        # What the team's shell (or a stray compose variable) may carry, too.
        "CONVEX_DEPLOYMENT": "dev:happy-animal-123",
        "CONVEX_URL": "http://127.0.0.1:9",
        "CONVEX_ADMIN_KEY": ADMIN_KEY,
        "CRM_API_KEY": "-" + "5e" * 31,
        "SUPABASE_JWT_ISSUER": "http://127.0.0.1:54321/auth/v1",
        "SUPABASE_JWKS_URL": JWKS_URL,
        **_pins(),
        **overrides,
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], cwd=app, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_env_then_deploy_reach_the_self_hosted_backend(app: Path, backend: Recorder, tmp_path: Path) -> None:
    generated = _tree_digest(app / "convex" / "_generated")
    crm_key = "-" + "5e" * 31
    result = _run(app, tmp_path, CONVEX_URL=backend.url, CRM_API_KEY=crm_key)

    calls = [(r["method"], r["path"]) for r in backend.requests]
    assert calls == [
        ("POST", "/api/update_environment_variables"),
        ("POST", "/api/update_environment_variables"),
        ("POST", "/api/update_environment_variables"),
        ("POST", "/api/get_config_hashes"),
    ], result.stderr
    # Each value exactly, the one starting with "-" included, with the admin key.
    assert [r["body"] for r in backend.requests[:3]] == [
        {"changes": [{"name": "CRM_API_KEY", "value": crm_key}]},
        {"changes": [{"name": "SUPABASE_JWT_ISSUER", "value": "http://127.0.0.1:54321/auth/v1"}]},
        {"changes": [{"name": "SUPABASE_JWKS_URL", "value": JWKS_URL}]},
    ]
    assert all(r["authorization"] == f"Convex {ADMIN_KEY}" for r in backend.requests[:3])
    # The deploy went to CONVEX_URL with the admin key, not to the .env.local deployment.
    hashes = backend.requests[3]["body"]
    assert isinstance(hashes, dict) and hashes["adminKey"] == ADMIN_KEY and hashes["version"] == _pins()["CONVEX_CLI_VERSION"]
    # The recorder stopped the deploy: the script fails, naming the backend's answer.
    assert result.returncode != 0
    assert "RecordedOnly" in result.stderr
    assert "must not be set" not in result.stderr and "unknown option" not in result.stderr
    # No secret on the terminal; the checkout and the team's files untouched; no selection file left.
    assert crm_key not in result.stdout + result.stderr and ADMIN_KEY not in result.stdout + result.stderr
    assert (app / ".env.local").read_text() == ENV_LOCAL
    assert _tree_digest(app / "convex" / "_generated") == generated
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_cli_other_than_the_pin_is_refused(app: Path, backend: Recorder, tmp_path: Path) -> None:
    result = _run(app, tmp_path, CONVEX_URL=backend.url, CONVEX_CLI_VERSION="1.29.1")
    assert result.returncode == 1
    assert backend.requests == []
    pins = _pins()
    (line,) = result.stderr.strip().splitlines()
    assert f"installed Convex CLI is {pins['CONVEX_CLI_VERSION']}" in line
    assert f"pairs backend {pins['CONVEX_BACKEND_TAG']} with CLI 1.29.1" in line


def test_a_missing_value_is_named(app: Path, backend: Recorder, tmp_path: Path) -> None:
    result = _run(app, tmp_path, CONVEX_URL=backend.url, SUPABASE_JWKS_URL="")
    assert result.returncode != 0
    assert "SUPABASE_JWKS_URL is not set" in result.stderr
    assert backend.requests == []
