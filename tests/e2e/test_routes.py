"""The Next.js API routes: the lookup (the same JSON as the Supabase RPC, from
both routes), an unknown phone, bad input, a bad key, a server missing its
settings (500) and a backend that fails (502).

The sandbox's app (``app_env``, built once when its sources changed) answers the
lookups; the 500 and 502 cases run the same build as extra ``next start``
servers with other settings, against a fake upstream."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import psycopg
import pytest

from sandbox import launcher, nextjs
from tests.ports import listening_port
from tests.seed.helpers import run_seed

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

PHONE = "6281234500077"
PHONE_MORE = "6281234500078"
BASE = datetime(2026, 1, 21, 10, 0, 0, 654321, tzinfo=UTC)
SUPABASE_ROUTE = "/api/contacts/by-phone"
CONVEX_ROUTE = "/api/contacts/by-phone-convex"
ROUTES = (SUPABASE_ROUTE, CONVEX_ROUTE)
UNKNOWN_PHONE = "6280000000001"
APP_DIR = Path(__file__).resolve().parents[2] / "nextjs"


@pytest.fixture(scope="module")
def workspace(app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One workspace, written to Supabase and migrated to Convex as `seed migrate` does, with two contacts:
    PHONE has 3 conversations (one never messaged, so last), 22 messages in the newest (more than the 20
    returned) and 11 notes (more than 10); PHONE_MORE has 5 conversations, one never messaged (left out).
    No two conversations, messages or notes of a contact share a time: the lookup does not order ties."""
    ws = str(uuid.uuid4())
    workdir = tmp_path_factory.mktemp("routes")
    with psycopg.connect(app_env["DATABASE_URL"], autocommit=True) as conn, conn.transaction():
        conn.execute("insert into workspaces (id, name, slug) values (%s, 'Route Test', %s)", (ws, f"route-{ws[:8]}"))
        for phone, conversations, newest_messages in ((PHONE, 3, 22), (PHONE_MORE, 5, 2)):
            contact = str(uuid.uuid4())
            conn.execute(
                """insert into contacts (id, workspace_id, phone, name, tags, lead_score, metadata, created_at, updated_at)
                   values (%s, %s, %s, 'Route Contact', %s, 42, '{"k": 1}', %s, %s)""",
                (contact, ws, phone, ["a", "b"], BASE, BASE),
            )
            for i in range(conversations):
                conv = str(uuid.uuid4())
                last = None if i == 0 else BASE + timedelta(hours=i)
                conn.execute(
                    """insert into conversations (id, workspace_id, contact_id, last_message_at, created_at)
                       values (%s, %s, %s, %s, %s)""",
                    (conv, ws, contact, last, BASE),
                )
                for j in range(newest_messages if i == conversations - 1 else 2):
                    conn.execute(
                        """insert into messages (workspace_id, conversation_id, direction, sender_type, content, created_at)
                           values (%s, %s, 'inbound', 'contact', %s, %s)""",
                        (ws, conv, f"m{i}.{j}", BASE + timedelta(hours=i, seconds=j, microseconds=j * 13)),
                    )
            if phone == PHONE:
                for k in range(11):
                    conn.execute(
                        "insert into contact_notes (workspace_id, contact_id, content, created_at) values (%s, %s, %s, %s)",
                        (ws, contact, f"note {k}", BASE + timedelta(minutes=k)),
                    )
    try:
        _migrate(app_env, workdir)
        yield ws
    finally:
        with psycopg.connect(app_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("delete from workspaces where id = %s", (ws,))
        # Convex has no delete by id for these tables: it becomes a copy of Supabase again
        _migrate(app_env, workdir, "--clear")


def _migrate(env: dict[str, str], workdir: Path, *flags: str) -> None:
    proc = run_seed(env, "migrate", "--restart", *flags, "--checkpoint", str(workdir / "cp.json"), cwd=workdir,
                    timeout=300)
    assert proc.returncode == 0, f"seed migrate {' '.join(flags)} failed: {proc.stderr[-1000:]}"


def get(env: dict[str, str], route: str, key: str | None, **params: str) -> httpx.Response:
    headers = {} if key is None else {"x-api-key": key}
    return httpx.get(f"{env['APP_URL']}{route}", params=params, headers=headers, timeout=30)


def rpc(env: dict[str, str], workspace_id: str, phone: str) -> Any:
    key = env["SUPABASE_SERVICE_ROLE_KEY"]
    response = httpx.post(
        f"{env['SUPABASE_URL']}/rest/v1/rpc/get_contact_context",
        json={"p_workspace_id": workspace_id, "p_phone": phone},
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def test_port_taken_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy port 3000 stops `sandbox up` with a message naming it (checked before any build)."""
    from sandbox import nextjs

    monkeypatch.setattr(launcher, "registry", lambda: [nextjs.SERVICE])
    monkeypatch.setattr(launcher, "by_name", lambda: {"nextjs": nextjs.SERVICE})
    monkeypatch.setattr(nextjs.SERVICE, "requires", ())
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 3000))
            holder.listen(1)
        except OSError:
            pass  # already taken (e.g. by a running sandbox): the same error is expected
        with pytest.raises(launcher.LauncherError, match=r"port 3000 \(nextjs\) is taken by another process"):
            launcher.up(["nextjs"], tmp_path / "state")
    finally:
        holder.close()


def error_body(message: str) -> bytes:
    """The routes' error body, byte for byte: JSON.stringify({error})."""
    return json.dumps({"error": message}, separators=(",", ":")).encode()


def assert_answer(response: httpx.Response, status: int, error: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    if error is not None:
        assert response.content == error_body(error)


@pytest.mark.parametrize("route", ROUTES)
def test_route_matches_the_rpc(app_env: dict[str, str], workspace: str, route: str) -> None:
    """Both routes answer the canonical lookup (the RPC's, checked against SQL in tests/supabase)."""
    response = get(app_env, route, app_env["CRM_API_KEY"], workspaceId=workspace, phone=PHONE)
    assert_answer(response, 200)
    body = response.json()
    assert body == rpc(app_env, workspace, PHONE)
    assert [c["lastMessageAt"] is None for c in body["conversations"]] == [False, False, True]
    assert len(body["conversations"][0]["messages"]) == 20
    assert len(body["notes"]) == 10
    assert isinstance(body["contact"]["createdAt"], int)
    more = get(app_env, route, app_env["CRM_API_KEY"], workspaceId=workspace, phone=PHONE_MORE)
    assert_answer(more, 200)
    assert more.json() == rpc(app_env, workspace, PHONE_MORE)
    assert [c["lastMessageAt"] is None for c in more.json()["conversations"]] == [False, False, False]


def test_convex_route_passes_the_http_action_through(app_env: dict[str, str], workspace: str) -> None:
    direct = _convex_http(app_env, workspace, PHONE)
    routed = get(app_env, CONVEX_ROUTE, app_env["CRM_API_KEY"], workspaceId=workspace, phone=PHONE)
    assert direct.status_code == routed.status_code == 200, (direct.text, routed.text)
    assert routed.content == direct.content


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_phone_or_workspace_is_404(app_env: dict[str, str], workspace: str, route: str) -> None:
    key = app_env["CRM_API_KEY"]
    for ws, phone in ((workspace, UNKNOWN_PHONE), (str(uuid.uuid4()), PHONE)):
        assert_answer(get(app_env, route, key, workspaceId=ws, phone=phone), 404, "contact not found")
        if route == CONVEX_ROUTE:
            assert _convex_http(app_env, ws, phone).status_code == 404


@pytest.mark.parametrize("route", ROUTES)
def test_bad_or_missing_key_is_401(app_env: dict[str, str], workspace: str, route: str) -> None:
    for key in (None, "", "wrong-" + app_env["CRM_API_KEY"], app_env["CRM_API_KEY"][:-1]):
        response = get(app_env, route, key, workspaceId=workspace, phone=PHONE)
        assert_answer(response, 401, "missing or invalid x-api-key")
    # the key is checked before the input
    assert_answer(get(app_env, route, "wrong", workspaceId="not-a-uuid"), 401, "missing or invalid x-api-key")


@pytest.mark.parametrize("route", ROUTES)
def test_bad_input_is_400(app_env: dict[str, str], workspace: str, route: str) -> None:
    key = app_env["CRM_API_KEY"]
    cases: list[tuple[dict[str, str], str]] = [
        ({"workspaceId": "not-a-uuid", "phone": PHONE}, "workspaceId must be a uuid"),
        ({"workspaceId": workspace.upper(), "phone": "+" + PHONE}, "phone must be E.164 digits without '+'"),
        ({"workspaceId": workspace, "phone": "0" + PHONE[1:]}, "phone must be E.164 digits without '+'"),
        ({"workspaceId": workspace, "phone": "62812"}, "phone must be E.164 digits without '+'"),
        ({"workspaceId": workspace}, "phone must be E.164 digits without '+'"),
        ({"phone": PHONE}, "workspaceId must be a uuid"),
        ({}, "workspaceId must be a uuid"),
    ]
    for params, message in cases:
        assert_answer(get(app_env, route, key, **params), 400, message)


def _convex_http(env: dict[str, str], workspace_id: str, phone: str) -> httpx.Response:
    return httpx.get(
        f"{env['CONVEX_SITE_URL']}/contacts/by-phone",
        params={"workspaceId": workspace_id, "phone": phone},
        headers={"x-api-key": env["CRM_API_KEY"]},
        timeout=30,
    )


# ----------------------------------------------------------------- servers missing settings, failing backends

KEY = "routes-test-key"
WORKSPACE = "11111111-2222-4333-8444-555555555555"
UPSTREAM_500 = "6281111111500"  # both backends answer 500
BAD_ROW = "6281111111777"  # Supabase answers a contact whose timestamp does not parse
HANG_UP = "6281111111999"  # the Convex site closes the connection without answering


class FailingUpstream:
    """A PostgREST and Convex-site stand-in that fails in the ways the routes must turn into 502."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                phone = query.get("phone", "").removeprefix("eq.")
                if phone == HANG_UP:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if phone == UPSTREAM_500:
                    return self.answer(500, {"code": "XX000", "message": "upstream failure", "details": None, "hint": None})
                if parts.path == "/rest/v1/contacts" and phone == BAD_ROW:
                    return self.answer(200, [{
                        "id": str(uuid.uuid4()), "workspace_id": WORKSPACE, "phone": phone, "name": None, "email": None,
                        "tags": [], "lead_status": None, "lead_score": None, "metadata": None,
                        "created_at": "not a timestamp", "updated_at": "not a timestamp",
                        "workspace": {"id": WORKSPACE, "name": "W"},
                    }])
                if parts.path == "/contacts/by-phone":  # the Convex HTTP action's answer for an unknown contact
                    return self.answer(404, {"error": "contact not found"})
                self.answer(200, [])

            def answer(self, status: int, doc: Any) -> None:
                payload = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _start_app(settings: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`next start` of the sandbox's build on a port of its choosing, with only these settings."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env |= {"NODE_ENV": "production", "NEXT_TELEMETRY_DISABLED": "1", **settings}
    version = nextjs.node_version()
    if version is not None and version < (22, 0):
        env["NODE_OPTIONS"] = "--experimental-websocket"  # as sandbox/nextjs.py: supabase-js needs a WebSocket
    proc = subprocess.Popen(
        ["node", str(APP_DIR / "node_modules" / "next" / "dist" / "bin" / "next"), "start", "-H", "127.0.0.1", "-p", "0"],
        cwd=APP_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        return proc, f"http://127.0.0.1:{listening_port(proc, timeout=60)}"
    except AssertionError:
        proc.kill()
        raise


@pytest.fixture(scope="module")
def other_apps(app_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Base URLs of three more servers: ``unset`` (no settings), ``no-backends`` (CRM_API_KEY only, and
    settings that name no usable backend), ``failing`` (both backends are the failing upstream)."""
    upstream = FailingUpstream()
    settings = {
        "unset": {},
        "no-backends": {"CRM_API_KEY": KEY, "SUPABASE_URL": upstream.url, "CONVEX_URL": "http://127.0.0.1:9"},
        "failing": {"CRM_API_KEY": KEY, "SUPABASE_URL": upstream.url, "SUPABASE_SERVICE_ROLE_KEY": "service-role",
                    "CONVEX_SITE_URL": upstream.url},
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        urls = {}
        for name, values in settings.items():
            proc, urls[name] = _start_app(values)
            started.append(proc)
        yield urls
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        upstream.close()


def _ask(base: str, route: str, phone: str = PHONE, key: str | None = KEY, workspace_id: str = WORKSPACE) -> httpx.Response:
    return get({"APP_URL": base}, route, key, workspaceId=workspace_id, phone=phone)


@pytest.mark.parametrize("route", ROUTES)
def test_server_without_crm_api_key_is_500(other_apps: dict[str, str], route: str) -> None:
    for key in (KEY, None):
        assert_answer(_ask(other_apps["unset"], route, key=key), 500, "CRM_API_KEY is not set on the server")


def test_server_without_a_backend_is_500(other_apps: dict[str, str]) -> None:
    base = other_apps["no-backends"]
    assert_answer(_ask(base, SUPABASE_ROUTE), 500, "SUPABASE_URL or SUPABASE_SERVICE_ROLE_KEY is not set on the server")
    # CONVEX_URL names neither a *.convex.cloud deployment nor a self-hosted :3210 one: no site URL to derive
    assert_answer(_ask(base, CONVEX_ROUTE), 500, "CONVEX_SITE_URL (or CONVEX_URL) is not set on the server")
    for route in ROUTES:  # the key and the input are checked first
        assert_answer(_ask(base, route, key="wrong"), 401, "missing or invalid x-api-key")
        assert_answer(_ask(base, route, phone="+1"), 400, "phone must be E.164 digits without '+'")


def test_failing_supabase_is_502(other_apps: dict[str, str]) -> None:
    base = other_apps["failing"]
    assert_answer(_ask(base, SUPABASE_ROUTE, phone=UPSTREAM_500), 502, "supabase request failed")
    assert_answer(_ask(base, SUPABASE_ROUTE, phone=BAD_ROW), 502, "lookup failed")
    assert_answer(_ask(base, SUPABASE_ROUTE, phone=UNKNOWN_PHONE), 404, "contact not found")


def test_failing_convex_is_502(other_apps: dict[str, str]) -> None:
    base = other_apps["failing"]
    assert_answer(_ask(base, CONVEX_ROUTE, phone=UPSTREAM_500), 502, "convex request failed")
    assert_answer(_ask(base, CONVEX_ROUTE, phone=HANG_UP), 502, "convex request failed")
    assert_answer(_ask(base, CONVEX_ROUTE, phone=UNKNOWN_PHONE), 404, "contact not found")
