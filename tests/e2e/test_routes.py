"""The Next.js API routes against the sandbox: the lookup (same JSON as the
Supabase RPC / the Convex HTTP action), an unknown phone, bad input, a bad key.
The app is built once (sandbox/nextjs.py skips the build when sources are unchanged)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox import launcher
from sandbox.services import CONVEX_RUNTIME

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

PHONE = "6281234500077"
BASE = datetime(2026, 1, 21, 10, 0, 0, 654321, tzinfo=UTC)
SUPABASE_ROUTE = "/api/contacts/by-phone"
CONVEX_ROUTE = "/api/contacts/by-phone-convex"


@pytest.fixture(scope="module")
def app_env(sandbox_env: dict[str, str]) -> dict[str, str]:
    state = Path(sandbox_env["SANDBOX_DIR"])
    services = ["postgres", "supabase", *(["convex"] if CONVEX_RUNTIME.exists() else []), "nextjs"]
    try:
        env = launcher.up(services, state)
    except launcher.LauncherError as exc:
        pytest.fail(f"the Next.js app did not start: {exc}")
    assert env.get("APP_URL") == "http://127.0.0.1:3000"
    return {**sandbox_env, **env}


@pytest.fixture(scope="module")
def workspace(app_env: dict[str, str]) -> Iterator[str]:
    """One workspace with a contact: 4 conversations (two never messaged), 22
    messages in the newest (more than the 20 returned), 11 notes (more than 10)."""
    ws, contact = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(app_env["DATABASE_URL"], autocommit=True) as conn, conn.transaction():
        conn.execute("insert into workspaces (id, name, slug) values (%s, 'Route Test', %s)", (ws, f"route-{ws[:8]}"))
        conn.execute(
            """insert into contacts (id, workspace_id, phone, name, tags, lead_score, metadata, created_at, updated_at)
               values (%s, %s, %s, 'Route Contact', %s, 42, '{"k": 1}', %s, %s)""",
            (contact, ws, PHONE, ["a", "b"], BASE, BASE),
        )
        for i in range(4):
            conv = str(uuid.uuid4())
            last = None if i < 2 else BASE + timedelta(hours=i)
            conn.execute(
                """insert into conversations (id, workspace_id, contact_id, last_message_at, created_at)
                   values (%s, %s, %s, %s, %s)""",
                (conv, ws, contact, last, BASE),
            )
            for j in range(22 if i == 3 else 2):
                conn.execute(
                    """insert into messages (workspace_id, conversation_id, direction, sender_type, content, created_at)
                       values (%s, %s, 'inbound', 'contact', %s, %s)""",
                    (ws, conv, f"m{i}.{j}", BASE + timedelta(hours=i, seconds=j, microseconds=j * 13)),
                )
        for k in range(11):
            conn.execute(
                "insert into contact_notes (workspace_id, contact_id, content, created_at) values (%s, %s, %s, %s)",
                (ws, contact, f"note {k}", BASE + timedelta(minutes=k)),
            )
    try:
        yield ws
    finally:
        with psycopg.connect(app_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("delete from workspaces where id = %s", (ws,))


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


def test_supabase_route_matches_the_rpc(app_env: dict[str, str], workspace: str) -> None:
    response = get(app_env, SUPABASE_ROUTE, app_env["CRM_API_KEY"], workspaceId=workspace, phone=PHONE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body == rpc(app_env, workspace, PHONE)
    assert [c["lastMessageAt"] is None for c in body["conversations"]] == [False, False, True]
    assert len(body["conversations"][0]["messages"]) == 20
    assert len(body["notes"]) == 10
    assert isinstance(body["contact"]["createdAt"], int)


@pytest.mark.parametrize("route", [SUPABASE_ROUTE, CONVEX_ROUTE])
def test_bad_or_missing_key_is_401(app_env: dict[str, str], workspace: str, route: str) -> None:
    for key in (None, "", "wrong-" + app_env["CRM_API_KEY"], app_env["CRM_API_KEY"][:-1]):
        response = get(app_env, route, key, workspaceId=workspace, phone=PHONE)
        assert response.status_code == 401, (key is None, response.text)
        assert response.json() == {"error": "missing or invalid x-api-key"}


@pytest.mark.parametrize("route", [SUPABASE_ROUTE, CONVEX_ROUTE])
def test_bad_input_is_400(app_env: dict[str, str], workspace: str, route: str) -> None:
    key = app_env["CRM_API_KEY"]
    cases: list[dict[str, str]] = [
        {"workspaceId": "not-a-uuid", "phone": PHONE},
        {"workspaceId": workspace, "phone": "+" + PHONE},
        {"workspaceId": workspace},
        {},
    ]
    for params in cases:
        response = get(app_env, route, key, **params)
        assert response.status_code == 400, (params, response.text)
        assert set(response.json()) == {"error"}


def test_supabase_route_unknown_phone_is_404(app_env: dict[str, str], workspace: str) -> None:
    key = app_env["CRM_API_KEY"]
    for ws, phone in ((workspace, "6280000000001"), (str(uuid.uuid4()), PHONE)):
        response = get(app_env, SUPABASE_ROUTE, key, workspaceId=ws, phone=phone)
        assert response.status_code == 404
        assert response.json() == {"error": "contact not found"}


def _convex_http(env: dict[str, str], workspace_id: str, phone: str) -> httpx.Response:
    return httpx.get(
        f"{env['CONVEX_SITE_URL']}/contacts/by-phone",
        params={"workspaceId": workspace_id, "phone": phone},
        headers={"x-api-key": env["CRM_API_KEY"]},
        timeout=30,
    )


@pytest.mark.skipif(not CONVEX_RUNTIME.exists(), reason="the sandbox's Convex runtime is not in this checkout")
def test_convex_route_answers_like_the_http_action(app_env: dict[str, str], workspace: str) -> None:
    key = app_env["CRM_API_KEY"]
    # whatever the Convex side holds (migrated or not), the route passes its answer through
    for ws, phone in ((workspace, PHONE), (workspace, "6280000000001"), (str(uuid.uuid4()), PHONE)):
        direct = _convex_http(app_env, ws, phone)
        routed = get(app_env, CONVEX_ROUTE, key, workspaceId=ws, phone=phone)
        assert direct.status_code in (200, 404), direct.text
        assert routed.status_code == direct.status_code, routed.text
        assert routed.json() == direct.json()
