"""Raw HTTP against the gateway: status codes, headers and error bodies of PostgREST v14 / Supabase."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sandbox.tokens import mint_jwt

from .conftest import PHONE, Crm

pytestmark = pytest.mark.sandbox
JSON = "application/json; charset=utf-8"


@pytest.fixture(scope="module")
def http(sandbox_env: dict[str, str]) -> httpx.Client:
    key = sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]
    return httpx.Client(base_url=f"{sandbox_env['SUPABASE_URL']}/rest/v1", headers={"apikey": key}, timeout=10)


def test_read_headers_and_content_range(http: httpx.Client, crm: Crm) -> None:
    conv = crm.conversations[0]
    r = http.get("/messages", params={"select": "id", "conversation_id": f"eq.{conv}", "limit": "10"})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    assert r.headers["content-range"] == "0-9/*"
    assert "preference-applied" not in r.headers
    empty = http.get("/messages", params={"conversation_id": f"eq.{uuid.uuid4()}"})
    assert empty.status_code == 200 and empty.json() == [] and empty.headers["content-range"] == "*/*"


def test_count_exact_partial_content_and_range(http: httpx.Client, crm: Crm) -> None:
    params = {"select": "id", "conversation_id": f"eq.{crm.conversations[0]}", "order": "created_at"}
    r = http.get("/messages", params={**params, "limit": "5"}, headers={"Prefer": "count=exact"})
    assert r.status_code == 206
    assert r.headers["content-range"] == "0-4/25"
    assert r.headers["preference-applied"] == "count=exact"
    full = http.get("/messages", params=params, headers={"Prefer": "count=exact"})
    assert full.status_code == 200 and full.headers["content-range"] == "0-24/25"
    ranged = http.get("/messages", params=params, headers={"Range": "2-4"})
    assert ranged.headers["content-range"] == "2-4/*" and len(ranged.json()) == 3
    assert ranged.json() == full.json()[2:5]
    beyond = http.get("/messages", params={**params, "offset": "30"}, headers={"Prefer": "count=exact"})
    assert beyond.status_code == 416
    assert beyond.json()["code"] == "PGRST103"
    assert beyond.json()["details"] == "An offset of 30 was requested, but there are only 25 rows."
    negative = http.get("/messages", params={**params, "limit": "-1"})
    assert negative.status_code == 416 and negative.json()["code"] == "PGRST103"


def test_head_has_headers_and_no_body(http: httpx.Client, crm: Crm) -> None:
    r = http.head("/messages", params={"conversation_id": f"eq.{crm.conversations[1]}"}, headers={"Prefer": "count=exact"})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-range"].endswith("/25")


def test_key_check_like_supabase(sandbox_env: dict[str, str]) -> None:
    base = f"{sandbox_env['SUPABASE_URL']}/rest/v1/workspaces"
    missing = httpx.get(base)
    assert missing.status_code == 401
    assert missing.json() == {
        "message": "No API key found in request",
        "hint": "No `apikey` request header or url param was found.",
    }
    wrong = httpx.get(base, headers={"apikey": "not-a-key"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid API key"
    as_param = httpx.get(base, params={"apikey": sandbox_env["SUPABASE_ANON_KEY"], "select": "id"})
    assert as_param.status_code == 200 and as_param.json() == []  # anon: RLS shows nothing


def test_jwt_errors_and_es256(sandbox_env: dict[str, str], crm: Crm) -> None:
    state = Path(sandbox_env["SANDBOX_DIR"])
    base = f"{sandbox_env['SUPABASE_URL']}/rest/v1/contacts"
    key = {"apikey": sandbox_env["SUPABASE_ANON_KEY"]}
    garbage = httpx.get(base, headers={**key, "Authorization": "Bearer abc"})
    assert garbage.status_code == 401 and garbage.json()["code"] == "PGRST301"
    assert garbage.json()["message"] == "Expected 3 parts in JWT; got 1"
    assert garbage.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    token = mint_jwt(sub=crm.members["a"], state_dir=state)
    head, payload, _sig = token.split(".")
    forged = httpx.get(base, headers={**key, "Authorization": f"Bearer {head}.{payload}.AAAA"})
    assert forged.status_code == 401 and forged.json()["message"] == "JWT cryptographic operation failed"
    expired = mint_jwt(sub=crm.members["a"], ttl=-120, state_dir=state)
    gone = httpx.get(base, headers={**key, "Authorization": f"Bearer {expired}"})
    assert gone.status_code == 401 and gone.json() == {
        "code": "PGRST303", "details": None, "hint": None, "message": "JWT expired",
    }
    es = mint_jwt(sub=crm.members["a"], alg="ES256", state_dir=state)
    ok = httpx.get(base, params={"select": "id", "phone": f"eq.{PHONE}"}, headers={**key, "Authorization": f"Bearer {es}"})
    assert ok.status_code == 200 and ok.json() == [{"id": crm.contacts["main"]}]
    jwks = httpx.get(f"{sandbox_env['SUPABASE_URL']}/auth/v1/.well-known/jwks.json").json()
    assert jwks["keys"][0]["alg"] == "ES256" and "d" not in jwks["keys"][0]


def test_error_codes(http: httpx.Client, crm: Crm) -> None:
    cases = [
        (http.get("/nope"), 404, "PGRST205"),
        (http.get("/contacts", params={"select": "id,nope"}), 400, "42703"),
        (http.get("/contacts", params={"nope": "eq.1"}), 400, "42703"),
        (http.get("/contacts", params={"id": "eq.not-a-uuid"}), 400, "22P02"),
        (http.get("/contacts", params={"id": "zz.1"}), 400, "PGRST100"),
        (http.get("/contacts", params={"select": "id,nowhere(id)"}), 400, "PGRST200"),
        (http.get("/contacts", params={"nowhere.id": "eq.1"}), 400, "PGRST108"),
        (http.get("/contacts", headers={"Accept-Profile": "secret"}), 406, "PGRST106"),
        (http.get("/contacts", headers={"Accept": "text/html"}), 406, "PGRST107"),
        (http.post("/rpc/nope", json={}), 404, "PGRST202"),
        (http.post("/contacts", content=b"{bad", headers={"Content-Type": "application/json"}), 400, "PGRST102"),
        (http.post("/contacts", json={"nope": 1}), 400, "PGRST204"),
    ]
    for resp, status, code in cases:
        assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
        assert set(resp.json()) == {"code", "message", "details", "hint"}
        assert resp.headers["content-type"] == JSON
    single = http.get("/contacts", params={"phone": f"eq.{PHONE}"}, headers={"Accept": "application/vnd.pgrst.object+json"})
    assert single.status_code == 406
    assert single.json()["message"] == "Cannot coerce the result to a single JSON object"
    assert single.json()["details"] == "The result contains 2 rows"
    one = http.get("/contacts", params={"id": f"eq.{crm.contacts['main']}", "select": "id"},
                   headers={"Accept": "application/vnd.pgrst.object+json"})
    assert one.status_code == 200 and one.json() == {"id": crm.contacts["main"]}
    assert one.headers["content-type"] == "application/vnd.pgrst.object+json; charset=utf-8"


def test_writes_status_and_prefer(http: httpx.Client, crm: Crm) -> None:
    ws = crm.workspaces["b"]
    slug = f"t-{uuid.uuid4().hex[:10]}"
    created = http.post("/workspaces", json={"name": "T", "slug": slug})
    assert created.status_code == 201 and created.content == b"" and created.headers["content-range"] == "*/*"
    assert "preference-applied" not in created.headers
    dup = http.post("/workspaces", json={"name": "T", "slug": slug})
    assert dup.status_code == 409 and dup.json()["code"] == "23505"
    fk = http.post("/contacts", json={"workspace_id": str(uuid.uuid4()), "phone": "628111111111"})
    assert fk.status_code == 409 and fk.json()["code"] == "23503"
    check = http.post("/contacts", json={"workspace_id": ws, "phone": "+62"})
    assert check.status_code == 400 and check.json()["code"] == "23514"
    rep = {"Prefer": "return=representation"}
    row = http.post("/workspaces", json={"name": "U", "slug": slug + "u"}, headers=rep)
    assert row.status_code == 201 and row.headers["preference-applied"] == "return=representation"
    wid = row.json()[0]["id"]
    merge = {"Prefer": "return=representation,resolution=merge-duplicates"}
    updated = http.post("/workspaces", json=[{"id": wid, "name": "V", "slug": slug + "u"}], headers=merge)
    assert updated.status_code == 200 and updated.json()[0]["name"] == "V"
    assert updated.headers["preference-applied"] == "resolution=merge-duplicates, return=representation"
    mixed = http.post(
        "/workspaces",
        params={"on_conflict": "slug"},
        json=[{"name": "W", "slug": slug + "u"}, {"name": "X", "slug": slug + "x"}],
        headers=merge,
    )
    assert mixed.status_code == 201 and sorted(r["name"] for r in mixed.json()) == ["W", "X"]
    ignored = http.post("/workspaces", params={"on_conflict": "slug"}, json=[{"name": "Y", "slug": slug}],
                        headers={"Prefer": "return=representation,resolution=ignore-duplicates"})
    assert ignored.status_code == 200 and ignored.json() == []
    patched = http.patch("/workspaces", params={"id": f"eq.{wid}"}, json={"name": "Z"})
    assert patched.status_code == 204 and patched.headers["content-range"] == "0-0/*"
    patched_rep = http.patch("/workspaces", params={"id": f"eq.{wid}", "select": "name"}, json={"name": "Q"}, headers=rep)
    assert patched_rep.status_code == 200 and patched_rep.json() == [{"name": "Q"}]
    deleted = http.request("DELETE", "/workspaces", params={"slug": f"like.{slug}*"}, json={})
    assert deleted.status_code == 204
    assert crm.sql("select count(*) from workspaces where slug like %s", slug + "%")[0][0] == 0


def test_missing_default(http: httpx.Client, crm: Crm) -> None:
    ws = crm.workspaces["b"]
    rows = [{"workspace_id": ws, "conversation_id": None, "content": "a"}]
    conv = crm.sql("insert into conversations (workspace_id, contact_id) values (%s, %s) returning id::text",
                   ws, crm.contacts["other"])[0][0]
    rows = [
        {"workspace_id": ws, "conversation_id": conv, "direction": "inbound", "sender_type": "contact", "content": "a",
         "message_type": "voice"},
        {"workspace_id": ws, "conversation_id": conv, "direction": "inbound", "sender_type": "contact", "content": "b"},
    ]
    cols = '"workspace_id","conversation_id","direction","sender_type","content","message_type"'
    r = http.post("/messages", params={"columns": cols, "select": "content,message_type"}, json=rows,
                  headers={"Prefer": "return=representation,missing=default"})
    assert r.status_code == 201, r.text
    assert r.json() == [{"content": "a", "message_type": "voice"}, {"content": "b", "message_type": "text"}]
    assert r.headers["preference-applied"] == "missing=default, return=representation"
    without = http.post("/messages", params={"columns": cols}, json=rows[1:])
    assert without.status_code == 400 and without.json()["code"] == "23502"  # null message_type
    crm.sql("delete from conversations where id = %s", conv)


def test_filters_logic_and_embeds(http: httpx.Client, crm: Crm) -> None:
    ws = crm.workspaces["a"]
    got = http.get("/conversations", params={
        "select": "status", "workspace_id": f"eq.{ws}", "or": "(status.eq.open,and(status.eq.closed,unread_count.gte.2))",
        "order": "status",
    }).json()
    want = crm.sql("select status from conversations where workspace_id = %s and (status = 'open' or "
                   "(status = 'closed' and unread_count >= 2)) order by status", ws)
    assert [r["status"] for r in got] == [r[0] for r in want]
    nulls = http.get("/conversations", params={"select": "id", "workspace_id": f"eq.{ws}",
                                               "last_message_at": "is.null"}).json()
    assert [r["id"] for r in nulls] == [crm.conversations[4]]
    notin = http.get("/conversations", params={"select": "id", "workspace_id": f"eq.{ws}",
                                               "id": f"not.in.({crm.conversations[0]},{crm.conversations[1]})"}).json()
    assert len(notin) == 3
    liked = http.get("/messages", params={"select": "content", "content": "like.c1 m1*", "order": "content",
                                          "workspace_id": f"eq.{ws}"}).json()
    assert [r["content"] for r in liked] == [f"c1 m{i}" for i in ["1", "10", "11", "12", "13", "14", "15", "16", "17",
                                                                  "18", "19"]]
    ilike = http.get("/contacts", params={"select": "name", "name": "ilike.*SANTOSO", "workspace_id": f"eq.{ws}"}).json()
    assert ilike == [{"name": "Budi Santoso"}]
    inner = http.get("/contacts", params={
        "select": "id,conversations!inner(id)", "workspace_id": f"eq.{ws}", "conversations.status": "eq.pending",
    }).json()
    assert [r["id"] for r in inner] == [crm.contacts["main"]]
    assert all(len(r["conversations"]) >= 1 for r in inner)
    aliased = http.get("/contacts", params={
        "select": "who:name,ws:workspace_id,workspace:workspaces(slug),score:lead_score::text",
        "id": f"eq.{crm.contacts['main']}",
    }).json()
    assert aliased[0]["who"] == "Budi Santoso" and aliased[0]["score"] == "87"
    # PostgREST writes a node's columns first, then its embeds (QueryBuilder.readPlanToQuery)
    assert list(aliased[0]) == ["who", "ws", "score", "workspace"]
    jsonpath = http.get("/contacts", params={"select": "src:metadata->>source", "metadata->>source": "eq.ads",
                                             "workspace_id": f"eq.{ws}"}).json()
    assert jsonpath == [{"src": "ads"}]
    quoted_in = http.get("/messages", params={"select": "content", "content": 'in.("c0 m1","c0 m2")', "order": "content",
                                              "workspace_id": f"eq.{ws}"})
    assert [r["content"] for r in quoted_in.json()] == ["c0 m1", "c0 m2"]


def test_rpc_get_and_post_same(http: httpx.Client, crm: Crm) -> None:
    args = {"p_workspace_id": crm.workspaces["a"], "p_phone": PHONE, "p_message_limit": "3"}
    by_get = http.get("/rpc/get_contact_context", params=args)
    by_post = http.post("/rpc/get_contact_context", json={**args, "p_message_limit": 3})
    assert by_get.status_code == by_post.status_code == 200
    assert by_get.content == by_post.content
    assert by_get.headers["content-type"] == JSON


def test_no_503_beyond_pool_size(sandbox_env: dict[str, str], crm: Crm) -> None:
    async def burst() -> list[int]:
        headers = {"apikey": sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]}
        async with httpx.AsyncClient(base_url=f"{sandbox_env['SUPABASE_URL']}/rest/v1", headers=headers) as client:
            responses = await asyncio.gather(
                *(client.post("/rpc/get_contact_context", json={"p_workspace_id": crm.workspaces["a"], "p_phone": PHONE})
                  for _ in range(60))
            )
        return [r.status_code for r in responses]

    assert set(asyncio.run(burst())) == {200}


def test_schema_cache_reload_on_notify(http: httpx.Client, crm: Crm) -> None:
    name = f"reload_probe_{uuid.uuid4().hex[:8]}"
    assert http.get(f"/{name}").status_code == 404
    crm.sql(f"create table public.{name} (id int primary key); grant select on public.{name} to service_role")
    try:
        crm.sql("notify pgrst, 'reload schema'")
        deadline = time.monotonic() + 10
        while http.get(f"/{name}").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get(f"/{name}").json() == []
    finally:
        crm.sql(f"drop table public.{name}")
        crm.sql("notify pgrst, 'reload schema'")


def test_hint_spread_and_embed_null_filter(http: httpx.Client, crm: Crm) -> None:
    cid = crm.contacts["main"]
    hinted = http.get("/contacts", params={"select": "id,ws:workspaces!contacts_workspace_id_fkey(name)", "id": f"eq.{cid}"})
    assert hinted.json() == [{"id": cid, "ws": {"name": "Eagle Overseas"}}]
    by_column = http.get("/contacts", params={"select": "workspace_id(slug)", "id": f"eq.{cid}"})
    assert by_column.status_code == 200 and "slug" in by_column.json()[0]["workspace_id"]
    spread = http.get("/contacts", params={"select": "id,...workspaces(workspace_name:name)", "id": f"eq.{cid}"})
    assert spread.json() == [{"id": cid, "workspace_name": "Eagle Overseas"}]
    # a to-many spread (PostgREST v13+): each column becomes an array, ordered as asked
    many = http.get("/contacts", params={"select": "id,...conversations(conv:id)", "id": f"eq.{cid}",
                                         "conversations.order": "unread_count.desc"})
    want = [r[0] for r in crm.sql("select id::text from conversations where contact_id = %s order by unread_count desc",
                                  cid)]
    assert many.json() == [{"id": cid, "conv": want}]
    with_convs = http.get("/contacts", params={
        "select": "id,conversations(id)", "workspace_id": f"eq.{crm.workspaces['a']}", "conversations": "not.is.null",
    })
    assert [r["id"] for r in with_convs.json()] == [cid]
    without = http.get("/contacts", params={
        "select": "id,conversations(id)", "workspace_id": f"eq.{crm.workspaces['a']}", "conversations": "is.null",
    })
    assert [r["id"] for r in without.json()] == [crm.contacts["quiet"]]


def test_count_planned_and_estimated(http: httpx.Client, crm: Crm) -> None:
    for mode in ("planned", "estimated"):
        r = http.get("/messages", params={"select": "id", "limit": "1"}, headers={"Prefer": f"count={mode}"})
        assert r.status_code in (200, 206)
        total = r.headers["content-range"].split("/")[1]
        assert total.isdigit() and int(total) >= 1
        assert r.headers["preference-applied"] == f"count={mode}"
        # with filters: the count's own statement binds its own values
        filtered = http.get("/messages", params={"select": "id", "conversation_id": f"eq.{crm.conversations[0]}",
                                                 "limit": "2"}, headers={"Prefer": f"count={mode}"})
        assert filtered.status_code in (200, 206) and len(filtered.json()) == 2
        assert filtered.headers["content-range"].split("/")[1].isdigit()


def test_embedded_order_limit_offset(http: httpx.Client, crm: Crm) -> None:
    conv = crm.conversations[2]
    r = http.get("/conversations", params={
        "select": "id,messages(content)", "id": f"eq.{conv}",
        "messages.order": "created_at.desc", "messages.limit": "2", "messages.offset": "1",
    })
    want = crm.sql("select content from messages where conversation_id = %s order by created_at desc offset 1 limit 2", conv)
    assert [m["content"] for m in r.json()[0]["messages"]] == [w[0] for w in want]


def test_schema_cache_reload_on_sigusr1_and_ddl(sandbox_env: dict[str, str], http: httpx.Client, crm: Crm) -> None:
    import os
    import signal

    name = f"reload_probe_{uuid.uuid4().hex[:8]}"
    # event triggers do not fire in replica mode: only SIGUSR1 can make the gateway see this table
    crm.sql(f"set session_replication_role = replica; create table public.{name} (id int primary key)")
    try:
        time.sleep(0.3)
        assert http.get(f"/{name}").status_code == 404
        pid = int((Path(sandbox_env["SANDBOX_DIR"]) / "supabase.pid").read_text())
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while http.get(f"/{name}").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get(f"/{name}").json() == []
    finally:
        crm.sql(f"drop table public.{name}")  # the DDL event trigger notifies pgrst
    deadline = time.monotonic() + 10
    while http.get(f"/{name}").json().get("code") != "PGRST205" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.get(f"/{name}").json()["code"] == "PGRST205"


def test_database_restart_is_not_an_error(sandbox_env: dict[str, str], http: httpx.Client) -> None:
    from sandbox import launcher
    from sandbox.postgres import Postgres

    state = Path(sandbox_env["SANDBOX_DIR"])
    if state == launcher.state_dir_of(None):
        pytest.skip("restarts PostgreSQL: only on a stack this session started")
    pg = Postgres(state)
    if not pg.is_running():
        pytest.skip("the database is not this stack's embedded PostgreSQL")
    assert http.get("/workspaces", params={"select": "id", "limit": "1"}).status_code == 200
    pg.stop()
    pg.start()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=str(http.base_url), headers=dict(http.headers)) as client:
            responses = await asyncio.gather(
                *(client.get("/workspaces", params={"select": "id", "limit": "1"}) for _ in range(20))
            )
        return [r.status_code for r in responses]

    assert set(asyncio.run(burst())) == {200}


def _wait_for(http: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    """The request, repeated while the function is not in the schema cache yet (404).

    The gateway reloads its schema cache on the NOTIFY that DDL sends; on a loaded machine a reload
    can take many seconds, so the wait is long (it ends at the first other answer)."""
    deadline = time.monotonic() + 90
    while True:
        resp = http.request(method, path, **kwargs)  # type: ignore[arg-type]
        if resp.status_code != 404 or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def test_rpc_shapes_and_put(http: httpx.Client, crm: Crm) -> None:
    tag = uuid.uuid4().hex[:8]
    echo, rows, void = f"t_echo_{tag}", f"t_rows_{tag}", f"t_void_{tag}"
    crm.sql(
        f"create function public.{echo}(jsonb) returns jsonb language sql as $$ select $1 $$;"
        f"create function public.{rows}(p_ws uuid) returns setof public.contacts language sql stable "
        f"as $$ select * from public.contacts where workspace_id = p_ws $$;"
        f"create function public.{void}() returns void language sql as $$ select $$;"
    )
    try:
        got = _wait_for(http, "POST", f"/rpc/{echo}", json={"a": [1, 2], "b": None})
        assert got.status_code == 200 and got.json() == {"a": [1, 2], "b": None}
        ws = crm.workspaces["a"]
        listed = _wait_for(http, "POST", f"/rpc/{rows}", json={"p_ws": ws}, params={"select": "phone", "order": "phone"})
        assert listed.json() == [{"phone": PHONE}, {"phone": "6289999000001"}]
        filtered = http.get(f"/rpc/{rows}", params={"p_ws": ws, "select": "id", "phone": f"eq.{PHONE}"})
        assert filtered.json() == [{"id": crm.contacts["main"]}]
        nothing = _wait_for(http, "POST", f"/rpc/{void}", json={})
        assert nothing.status_code == 204 and nothing.content == b""
    finally:
        crm.sql(f"drop function public.{echo}(jsonb); drop function public.{rows}(uuid); drop function public.{void}()")
    wid = str(uuid.uuid4())
    slug = f"put-{wid[:8]}"
    put = http.put("/workspaces", params={"id": f"eq.{wid}"}, json={"id": wid, "name": "P", "slug": slug},
                   headers={"Prefer": "return=representation"})
    assert put.status_code == 200 and put.json()[0]["name"] == "P"
    again = http.put("/workspaces", params={"id": f"eq.{wid}"}, json={"id": wid, "name": "P2", "slug": slug})
    assert again.status_code == 204
    assert crm.sql("select name from workspaces where id = %s", wid) == [("P2",)]
    mismatch = http.put("/workspaces", params={"id": f"eq.{wid}"}, json={"id": str(uuid.uuid4()), "name": "x", "slug": "y"})
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "PGRST115"
    no_pk = http.put("/workspaces", params={"name": f"eq.{wid}"}, json={"name": "x"})
    assert no_pk.status_code == 400 and no_pk.json()["code"] == "PGRST105"
    crm.sql("delete from workspaces where id = %s", wid)


def test_ddl_between_requests_is_not_an_error(http: httpx.Client, crm: Crm) -> None:
    name = f"ddl_probe_{uuid.uuid4().hex[:8]}"
    crm.sql(f"create table public.{name} (id int primary key); insert into public.{name} values (1)")
    try:
        first = _wait_for(http, "GET", f"/{name}")
        assert first.json() == [{"id": 1}]
        for _ in range(12):  # warm every pooled connection's prepared statement
            assert http.get(f"/{name}").status_code == 200
        crm.sql(f"alter table public.{name} add column note text default 'x'")
        deadline = time.monotonic() + 10
        while True:
            resp = http.get(f"/{name}")
            assert resp.status_code == 200, resp.text
            if resp.json() == [{"id": 1, "note": "x"}] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert resp.json() == [{"id": 1, "note": "x"}]
        for _ in range(12):
            assert http.get(f"/{name}").status_code == 200
    finally:
        crm.sql(f"drop table public.{name}")


def test_ambiguous_embed_300_and_forbidden_403(sandbox_env: dict[str, str], http: httpx.Client, crm: Crm) -> None:
    tag = uuid.uuid4().hex[:8]
    people, links, secret = f"people_{tag}", f"links_{tag}", f"secret_{tag}"
    crm.sql(
        f"create table public.{people} (id int primary key);"
        f"create table public.{links} (id int primary key, a int references public.{people}, b int references public.{people});"
        f"create function public.{secret}() returns int language sql as $$ select 1 $$;"
        f"revoke execute on function public.{secret}() from public, anon, authenticated;"
    )
    try:
        amb = _wait_for(http, "GET", f"/{links}", params={"select": f"id,{people}(id)"})
        assert amb.status_code == 300 and amb.json()["code"] == "PGRST201"
        assert {d["cardinality"] for d in amb.json()["details"]} == {"many-to-one"}
        hinted = http.get(f"/{links}", params={"select": f"id,{people}!{links}_a_fkey(id)"})
        assert hinted.status_code == 200
        member = mint_jwt(sub=crm.members["a"], state_dir=Path(sandbox_env["SANDBOX_DIR"]))
        key = sandbox_env["SUPABASE_ANON_KEY"]
        forbidden = _wait_for(http, "POST", f"/rpc/{secret}", json={},
                              headers={"apikey": key, "Authorization": f"Bearer {member}"})
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "42501"
        anon = http.post(f"/rpc/{secret}", json={}, headers={"apikey": key, "Authorization": f"Bearer {key}"})
        assert anon.status_code == 401 and anon.json()["code"] == "42501"
    finally:
        crm.sql(f"drop table public.{links}; drop table public.{people}; drop function public.{secret}()")


def test_order_by_related_to_one(http: httpx.Client, crm: Crm) -> None:
    ids = [crm.contacts["main"], crm.contacts["other"]]
    got = http.get("/contacts", params={
        "select": "id,ws:workspaces(name)", "id": f"in.({','.join(ids)})", "order": "ws(name).desc",
    })
    assert [r["ws"]["name"] for r in got.json()] == ["Falcon Trading", "Eagle Overseas"]
    many = http.get("/contacts", params={"select": "id,conversations(id)", "order": "conversations(id)"})
    assert many.status_code == 400 and many.json()["code"] == "PGRST118"


def test_rls_writes_for_members(sandbox_env: dict[str, str], crm: Crm) -> None:
    state = Path(sandbox_env["SANDBOX_DIR"])
    member = mint_jwt(sub=crm.members["a"], state_dir=state)
    client = httpx.Client(
        base_url=f"{sandbox_env['SUPABASE_URL']}/rest/v1",
        headers={"apikey": sandbox_env["SUPABASE_ANON_KEY"], "Authorization": f"Bearer {member}"},
    )
    own = {"workspace_id": crm.workspaces["a"], "conversation_id": crm.conversations[0], "direction": "outbound",
           "sender_type": "ai", "content": "rls ok", "message_type": "loadtest"}
    ok = client.post("/messages", json=own, headers={"Prefer": "return=representation"})
    assert ok.status_code == 201, ok.text
    foreign = {**own, "workspace_id": crm.workspaces["b"]}
    denied = client.post("/messages", json=foreign)
    assert denied.status_code == 403 and denied.json()["code"] == "42501"
    # members have no delete policy: the row stays
    gone = client.delete("/messages", params={"id": f"eq.{ok.json()[0]['id']}"})
    assert gone.status_code == 204
    assert crm.sql("select count(*) from messages where id = %s", ok.json()[0]["id"]) == [(1,)]
    crm.sql("delete from messages where id = %s", ok.json()[0]["id"])
