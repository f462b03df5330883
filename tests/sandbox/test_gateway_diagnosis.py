"""What a latency diagnosis reads from the Supabase side, as PostgREST v14 gives it:
``Server-Timing``, the ``application/vnd.pgrst.plan`` media type (supabase-py's
``.explain()``), their switches (flags, ``PGRST_*``, in-database settings), and
``pg_stat_statements`` in the sandbox's PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sandbox.services import Context, gateway_db_uri
from sandbox.tokens import mint_jwt
from supabase import Client, ClientOptions, create_client

from .conftest import PHONE, Crm, standalone_gateway, wait_until

pytestmark = pytest.mark.sandbox
TIMING = re.compile(
    r"^jwt;dur=(\d+\.\d), parse;dur=(\d+\.\d), plan;dur=(\d+\.\d), transaction;dur=(\d+\.\d), response;dur=(\d+\.\d)$"
)
PLAN_JSON = "application/vnd.pgrst.plan+json"


def phases(resp: httpx.Response) -> dict[str, float]:
    match = TIMING.match(resp.headers["server-timing"])
    assert match, resp.headers["server-timing"]
    return dict(zip(("jwt", "parse", "plan", "transaction", "response"), map(float, match.groups()), strict=True))


@pytest.fixture(scope="module")
def http(sandbox_env: dict[str, str]) -> Iterator[httpx.Client]:
    key = sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]
    with httpx.Client(base_url=f"{sandbox_env['SUPABASE_URL']}/rest/v1", headers={"apikey": key}, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def sleeper(crm: Crm, http: httpx.Client) -> Iterator[str]:
    """A function that sleeps, to put known time into the transaction."""
    name = f"t_sleep_{uuid.uuid4().hex[:8]}"
    crm.sql(
        f"create function public.{name}(seconds float8) returns int language sql volatile "
        f"as $$ select 1 from pg_sleep(seconds) $$"
    )
    assert wait_until(lambda: http.post(f"/rpc/{name}", json={"seconds": 0}).status_code == 200)
    try:
        yield name
    finally:
        crm.sql(f"drop function public.{name}(float8)")


@pytest.fixture(scope="module")
def standalone_env(sandbox_env: dict[str, str]) -> dict[str, str]:
    return {"PGRST_DB_URI": sandbox_env["DATABASE_URL"], "PGRST_JWT_SECRET": sandbox_env["SUPABASE_JWT_SECRET"]}


def _notify_reload_config(crm: Crm) -> None:
    crm.sql("notify pgrst, 'reload config'")


# Server-Timing ------------------------------------------------------------------
def test_server_timing_on_every_successful_response(http: httpx.Client, crm: Crm, sleeper: str) -> None:
    ws = crm.workspaces["b"]
    contact = crm.contacts["other"]
    note = {"workspace_id": ws, "contact_id": contact, "content": "timed"}
    responses = [
        http.get("/contacts", params={"select": "id,workspaces(name)", "phone": f"eq.{PHONE}"}),
        http.head("/contacts", params={"phone": f"eq.{PHONE}"}),
        http.post("/contact_notes", json=note, headers={"Prefer": "return=representation"}),
        http.patch("/contact_notes", params={"content": "eq.timed"}, json={"content": "timed2"}),
        http.delete("/contact_notes", params={"content": "eq.timed2"}),
        http.post(f"/rpc/{sleeper}", json={"seconds": 0}),
        http.get("/rpc/get_contact_context", params={"p_workspace_id": ws, "p_phone": PHONE}),
        http.get("/"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 201, 204, 204, 200, 200, 200]
    for resp in responses:
        got = phases(resp)
        assert all(v >= 0 for v in got.values())


def test_errors_carry_no_server_timing(http: httpx.Client, crm: Crm, sandbox_env: dict[str, str]) -> None:
    single = {"Accept": "application/vnd.pgrst.object+json"}
    errors = [
        (http.get("/nope"), 404),
        (http.get("/contacts", params={"id": "zz.1"}), 400),
        (http.get("/contacts", params={"phone": f"eq.{PHONE}"}, headers=single), 406),  # after the transaction
        (http.get("/contacts", headers={"Authorization": "Bearer abc"}), 401),
        (http.get("/contacts", params={"offset": "1000000"}, headers={"Prefer": "count=exact"}), 416),
        (http.post("/contacts", json={"nope": 1}), 400),
        (http.get("/contacts", params={"select": "id::nope"}), 400),  # PostgreSQL's own error
    ]
    for resp, status in errors:
        assert resp.status_code == status, resp.text
        assert "server-timing" not in resp.headers, resp.request.url


def test_transaction_phase_is_the_database_time(http: httpx.Client, sleeper: str) -> None:
    t0 = time.perf_counter()
    resp = http.post(f"/rpc/{sleeper}", json={"seconds": 0.25})
    elapsed_ms = (time.perf_counter() - t0) * 1000
    got = phases(resp)
    assert 250 <= got["transaction"] < elapsed_ms
    assert sum(got.values()) <= elapsed_ms
    assert max(got["jwt"], got["parse"], got["plan"], got["response"]) < 50


def test_transaction_phase_includes_pool_checkout(standalone_env: dict[str, str], sleeper: str,
                                                  sandbox_env: dict[str, str]) -> None:
    """With one pooled connection held by a 0.4 s call, a quick read's transaction holds its wait."""
    token = mint_jwt(role="service_role", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    auth = {"Authorization": f"Bearer {token}"}
    with standalone_gateway(standalone_env, "--db-pool", "1", "--server-timing-enabled") as base:
        slow = threading.Thread(target=httpx.post, args=(f"{base}/rpc/{sleeper}",),
                                kwargs={"json": {"seconds": 0.4}, "headers": auth, "timeout": 10})
        slow.start()
        time.sleep(0.1)
        quick = httpx.get(f"{base}/workspaces", params={"select": "id", "limit": "1"}, headers=auth)
        slow.join()
        assert quick.status_code == 200
        got = phases(quick)
        assert got["transaction"] >= 200, got  # waited for the connection
        assert got["plan"] < 50 and got["parse"] < 50


def test_switches_off_by_default_standalone(standalone_env: dict[str, str]) -> None:
    with standalone_gateway(standalone_env) as base:
        plain = httpx.get(f"{base}/workspaces", params={"select": "id", "limit": "1"})
        assert plain.status_code == 200 and "server-timing" not in plain.headers
        accept = 'application/vnd.pgrst.plan+json; for="application/json"; options=analyze|buffers'
        plan = httpx.get(f"{base}/workspaces", headers={"Accept": accept})
        assert plan.status_code == 406
        assert plan.json() == {
            "code": "PGRST107",
            "details": None,
            "hint": None,
            "message": 'None of these media types are available: application/vnd.pgrst.plan+json; '
                       'for="application/json"; options=analyze|buffers',
        }
        assert "server-timing" not in plan.headers
    with standalone_gateway({**standalone_env, "PGRST_SERVER_TIMING_ENABLED": "true",
                             "PGRST_DB_PLAN_ENABLED": "1"}) as base:
        timed = httpx.get(f"{base}/workspaces", params={"select": "id", "limit": "1"})
        assert phases(timed)
        plan = httpx.get(f"{base}/workspaces", headers={"Accept": "application/vnd.pgrst.plan"})
        assert plan.status_code == 200 and plan.text.startswith("Aggregate")


def test_in_database_settings_win_and_reload(sandbox_env: dict[str, str], crm: Crm, http: httpx.Client) -> None:
    """Supabase's documented switch: ``alter role authenticator set pgrst.… ; notify pgrst, 'reload config'``."""
    login = urlsplit(gateway_db_uri(Context(Path(sandbox_env["SANDBOX_DIR"]), dict(sandbox_env)))).username
    accept = {"Accept": "application/vnd.pgrst.plan"}

    def timed() -> bool:
        return "server-timing" in http.get("/workspaces", params={"limit": "1"}).headers

    def plans() -> bool:
        return http.get("/workspaces", headers=accept).status_code == 200

    assert timed() and plans()  # the sandbox turns both on
    try:
        # `off` is not a boolean to PostgREST: the in-database value still wins, as the default (false)
        crm.sql(f'alter role "{login}" set pgrst.server_timing_enabled = \'off\'')
        crm.sql(f'alter role "{login}" set pgrst.db_plan_enabled to \'false\'')
        _notify_reload_config(crm)
        assert wait_until(lambda: not timed() and not plans())
        resp = http.get("/workspaces", headers=accept)
        assert resp.status_code == 406 and resp.json()["code"] == "PGRST107"
    finally:
        crm.sql(f'alter role "{login}" reset pgrst.server_timing_enabled')
        crm.sql(f'alter role "{login}" reset pgrst.db_plan_enabled')
        _notify_reload_config(crm)
    assert wait_until(lambda: timed() and plans())


# plans --------------------------------------------------------------------------
def test_plan_json_of_an_embedded_read(http: httpx.Client, crm: Crm) -> None:
    params = {"select": "id,workspace:workspaces(name),conversations(id,messages(id))", "phone": f"eq.{PHONE}",
              "workspace_id": f"eq.{crm.workspaces['a']}"}
    resp = http.get("/contacts", params=params, headers={"Accept": f"{PLAN_JSON}; options=wal|buffers|analyze"})
    assert resp.status_code == 200
    # options in PostgREST's fixed order, whatever the request's order
    assert resp.headers["content-type"] == (
        'application/vnd.pgrst.plan+json; for="application/json"; options=analyze|buffers|wal; charset=utf-8'
    )
    assert resp.content.endswith(b"\n") and "content-range" not in resp.headers
    plan = resp.json()
    assert isinstance(plan, list) and len(plan) == 1
    top = plan[0]["Plan"]
    assert top["Node Type"] == "Aggregate"
    assert top["Actual Loops"] == 1  # analyze ran it
    assert "WAL Records" in top and "Shared Hit Blocks" in top
    assert "Execution Time" in plan[0]
    text = json.dumps(plan)
    assert '"Relation Name": "messages"' in text and '"Relation Name": "workspaces"' in text


def test_plan_text_default_and_singular_target(http: httpx.Client) -> None:
    resp = http.get("/contacts", params={"select": "id", "phone": f"eq.{PHONE}"},
                    headers={"Accept": "application/vnd.pgrst.plan"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == 'application/vnd.pgrst.plan+text; for="application/json"; charset=utf-8'
    assert resp.text.startswith("Aggregate") and resp.text.endswith("\n")
    single = http.get(
        "/contacts", params={"select": "id", "phone": f"eq.{PHONE}"},
        headers={"Accept": 'application/vnd.pgrst.plan+json; for="application/vnd.pgrst.object"; options=verbose'},
    )
    # a plan is not a singular response: two matching rows are no PGRST116
    assert single.status_code == 200
    assert single.headers["content-type"] == (
        'application/vnd.pgrst.plan+json; for="application/vnd.pgrst.object+json"; options=verbose; charset=utf-8'
    )
    output = single.json()[0]["Plan"]["Output"]
    assert any("json_agg" in o and "-> 0" in o for o in output), output


def test_plan_negotiation_like_postgrest(http: httpx.Client) -> None:
    # equally specific: the first entry wins, so data comes back
    data = http.get("/workspaces", params={"limit": "1"}, headers={"Accept": f"application/json, {PLAN_JSON}"})
    assert data.headers["content-type"] == "application/json; charset=utf-8"
    # a parameter makes the plan entry more specific (wai's parseHttpAccept): the plan wins
    plan = http.get("/workspaces", params={"limit": "1"},
                    headers={"Accept": f'application/json, {PLAN_JSON}; for="application/json"'})
    assert plan.headers["content-type"].startswith(PLAN_JSON)
    csv = http.get("/workspaces", headers={"Accept": f'{PLAN_JSON}; for="text/csv"'})
    assert csv.status_code == 406 and csv.json()["message"] == (
        f'None of these media types are available: {PLAN_JSON}; for="text/csv"'
    )


def test_plan_runs_as_the_caller_with_rls(sandbox_env: dict[str, str], crm: Crm, http: httpx.Client) -> None:
    token = mint_jwt(sub=crm.members["a"], state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    accept = {"Accept": "application/vnd.pgrst.plan+text; options=verbose|settings"}
    member = http.get("/contacts", params={"select": "id"}, headers={**accept, "Authorization": f"Bearer {token}"})
    service = http.get("/contacts", params={"select": "id"}, headers=accept)
    assert member.status_code == service.status_code == 200
    # the member's plan carries the RLS policy's membership sub-select; service_role bypasses RLS
    assert "workspace_members" in member.text
    assert "workspace_members" not in service.text
    # the request's transaction settings are in force (search_path set by the gateway)
    assert 'search_path = \'"public", "public"\'' in member.text


def test_plan_of_rpc_calls(http: httpx.Client, crm: Crm) -> None:
    args = {"p_workspace_id": crm.workspaces["a"], "p_phone": PHONE}
    post = http.post("/rpc/get_contact_context", json=args, headers={"Accept": f"{PLAN_JSON}; options=analyze"})
    assert post.status_code == 200
    assert post.headers["content-type"] == (
        'application/vnd.pgrst.plan+json; for="application/json"; options=analyze; charset=utf-8'
    )
    assert post.json()[0]["Plan"]["Actual Loops"] == 1
    get = http.get("/rpc/get_contact_context", params=args, headers={"Accept": "application/vnd.pgrst.plan"})
    assert get.status_code == 200 and get.text.startswith("Aggregate")


def test_supabase_py_explain(sandbox_env: dict[str, str], crm: Crm) -> None:
    """supabase-py's ``.explain()`` (no ``for=``, possibly empty ``options=``) as the real client."""
    sb: Client = create_client(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"],
                               ClientOptions(postgrest_client_retry=False))
    query = (
        sb.table("contacts").select("id,conversations(id)").eq("phone", PHONE).eq("workspace_id", crm.workspaces["a"])
    )
    text = query.explain().execute()
    assert str(text).startswith("Aggregate")
    plan = (
        sb.table("contacts").select("id,conversations(id)").eq("phone", PHONE)
        .explain(analyze=True, buffers=True, format="json").execute()
    )
    data = plan.data
    assert data[0]["Plan"]["Node Type"] == "Aggregate" and "Execution Time" in data[0]


# pg_stat_statements ---------------------------------------------------------------
def test_pg_stat_statements_sees_gateway_traffic_by_role(sandbox_env: dict[str, str], crm: Crm,
                                                         http: httpx.Client) -> None:
    assert crm.sql("select current_setting('shared_preload_libraries')")[0][0] == "pg_stat_statements"
    assert crm.sql(
        "select extnamespace::regnamespace::text from pg_extension where extname = 'pg_stat_statements'"
    ) == [("extensions",)]
    marker = f"pgss-{uuid.uuid4().hex[:8]}"
    token = mint_jwt(sub=crm.members["a"], state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    for _ in range(3):
        assert http.get("/contacts", params={"select": "id", "name": f"eq.{marker}"}).status_code == 200
        member = http.get("/contact_notes", params={"select": "id", "content": f"eq.{marker}"},
                          headers={"Authorization": f"Bearer {token}"})
        assert member.status_code == 200
    rows = crm.sql(
        """select r.rolname, s.calls, s.query from extensions.pg_stat_statements s
           join pg_roles r on r.oid = s.userid
           where s.query like 'WITH pgrst_source AS (SELECT %%' and s.query like '%%"contacts"%%'
              or s.query like 'WITH pgrst_source AS (SELECT %%' and s.query like '%%"contact_notes"%%'"""
    )
    by_role = {(role, '"contact_notes"' in query) for role, calls, query in rows if calls >= 3}
    assert ("service_role", False) in by_role
    assert ("authenticated", True) in by_role
