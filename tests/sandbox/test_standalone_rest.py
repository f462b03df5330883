"""``python -m sandbox rest``: the gateway on its own, configured like PostgREST."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.tokens import mint_jwt

from .conftest import PHONE, Crm, standalone_gateway

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def standalone(sandbox_env: dict[str, str]) -> Iterator[str]:
    with standalone_gateway(
        {"PGRST_DB_URI": sandbox_env["DATABASE_URL"], "PGRST_JWT_SECRET": sandbox_env["SUPABASE_JWT_SECRET"]},
        "--db-schemas", "public,auth", "--db-anon-role", "anon", "--db-max-rows", "2", "--db-pool", "3",
    ) as base:
        yield base


def test_no_key_check_and_root_paths(standalone: str, sandbox_env: dict[str, str], crm: Crm) -> None:
    anon = httpx.get(f"{standalone}/contacts", params={"select": "id"})
    assert anon.status_code == 200 and anon.json() == []
    token = mint_jwt(role="service_role", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    auth = {"Authorization": f"Bearer {token}"}
    capped = httpx.get(f"{standalone}/messages", params={"select": "id", "workspace_id": f"eq.{crm.workspaces['a']}"},
                       headers=auth)
    assert len(capped.json()) == 2 and capped.headers["content-range"] == "0-1/*"  # db-max-rows
    assert capped.headers["content-profile"] == "public"  # several schemas exposed
    same = httpx.get(f"{standalone}/rest/v1/contacts", params={"select": "id", "phone": f"eq.{PHONE}",
                                                                "workspace_id": f"eq.{crm.workspaces['a']}"}, headers=auth)
    assert same.json() == [{"id": crm.contacts["main"]}]
    other = httpx.get(f"{standalone}/contacts", headers={**auth, "Accept-Profile": "nope"})
    assert other.status_code == 406 and other.json()["hint"] == "Only the following schemas are exposed: public, auth"


def test_anonymous_access_disabled(sandbox_env: dict[str, str]) -> None:
    with standalone_gateway(
        {"PGRST_DB_URI": sandbox_env["DATABASE_URL"], "PGRST_JWT_SECRET": sandbox_env["SUPABASE_JWT_SECRET"]},
        "--db-anon-role", "",
    ) as base:
        resp = httpx.get(f"{base}/contacts")
        assert resp.status_code == 401 and resp.json()["code"] == "PGRST302"


def test_impersonated_role_settings(standalone: str, sandbox_env: dict[str, str], crm: Crm) -> None:
    """anon runs with its own statement_timeout (3s), as on Supabase; a role without settings keeps the session's."""
    import uuid

    name = f"t_timeout_{uuid.uuid4().hex[:8]}"
    crm.sql(f"create function public.{name}() returns text language sql stable "
            "as $$ select current_setting('statement_timeout') $$")
    try:
        state = Path(sandbox_env["SANDBOX_DIR"])
        deadline = time.monotonic() + 10
        while (anon := httpx.post(f"{standalone}/rpc/{name}", json={})).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert anon.json() == "3s"
        member = mint_jwt(sub=crm.members["a"], state_dir=state)
        authed = httpx.post(f"{standalone}/rpc/{name}", json={}, headers={"Authorization": f"Bearer {member}"})
        assert authed.json() == "8s"
        service = mint_jwt(role="service_role", state_dir=state)
        plain = httpx.post(f"{standalone}/rpc/{name}", json={}, headers={"Authorization": f"Bearer {service}"})
        assert plain.json() == "0"  # the standalone gateway logs in as a role without a timeout
    finally:
        crm.sql(f"drop function public.{name}()")
