"""supabase-py 2.34.1 against the gateway; every result checked against the same query in SQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from postgrest.exceptions import APIError

from sandbox.tokens import mint_jwt
from supabase import Client, ClientOptions, create_client

from .conftest import PHONE, Crm

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sb(sandbox_env: dict[str, str]) -> Client:
    return create_client(
        sandbox_env["SUPABASE_URL"],
        sandbox_env["SUPABASE_SERVICE_ROLE_KEY"],
        ClientOptions(postgrest_client_retry=False),
    )


def sql_json(crm: Crm, query: str, *params: object) -> Any:
    """Rows as PostgreSQL's own JSON, the way the gateway renders them."""
    return crm.sql(f"select coalesce(json_agg(t), '[]') from ({query}) t", *params)[0][0]


def test_select_eq_order_limit(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["a"]
    got = (
        sb.table("messages")
        .select("id,content,created_at")
        .eq("workspace_id", ws)
        .order("created_at", desc=True)
        .limit(7)
        .execute()
        .data
    )
    want = sql_json(
        crm, "select id, content, created_at from messages where workspace_id = %s order by created_at desc limit 7", ws
    )
    assert got == want and len(got) == 7


def test_select_star_and_single_maybe_single(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["a"]
    got = sb.table("contacts").select("*").eq("phone", PHONE).eq("workspace_id", ws).limit(1).execute().data
    assert got == sql_json(crm, "select * from contacts where phone = %s and workspace_id = %s", PHONE, ws)
    one = sb.table("contacts").select("id,name").eq("id", crm.contacts["main"]).single().execute().data
    assert one == {"id": crm.contacts["main"], "name": "Budi Santoso"}
    with pytest.raises(APIError) as err:
        sb.table("contacts").select("id").eq("phone", PHONE).single().execute()
    assert err.value.code == "PGRST116"
    none = sb.table("contacts").select("id").eq("phone", "6280000000000").maybe_single().execute()
    assert none is None
    found = sb.table("contacts").select("id").eq("id", crm.contacts["quiet"]).maybe_single().execute()
    assert found is not None and found.data == {"id": crm.contacts["quiet"]}


def test_in_filter_and_range_count(sb: Client, crm: Crm) -> None:
    convs = crm.conversations[:3]
    got = sb.table("conversations").select("id,status").in_("id", convs).order("id").execute().data
    assert got == sql_json(crm, "select id, status from conversations where id = any(%s::uuid[]) order by id", convs)
    page = (
        sb.table("messages")
        .select("id", count="exact")
        .eq("conversation_id", convs[0])
        .order("created_at")
        .range(5, 9)
        .execute()
    )
    assert page.count == 25
    assert page.data == sql_json(
        crm, "select id from messages where conversation_id = %s order by created_at offset 5 limit 5", convs[0]
    )


def test_nested_select_lookup(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["a"]
    got = (
        sb.table("contacts")
        .select("id,name,workspace:workspaces(id,name),conversations(id,last_message_at,messages(id,content)),contact_notes(id)")
        .eq("workspace_id", ws)
        .eq("phone", PHONE)
        .order("last_message_at", desc=True, nullsfirst=False, foreign_table="conversations")
        .limit(3, foreign_table="conversations")
        .order("created_at", desc=True, foreign_table="conversations.messages")
        .limit(20, foreign_table="conversations.messages")
        .order("created_at", desc=True, foreign_table="contact_notes")
        .limit(10, foreign_table="contact_notes")
        .execute()
        .data
    )
    assert len(got) == 1
    row = got[0]
    assert row["workspace"] == {"id": ws, "name": "Eagle Overseas"}
    conv_ids = [r[0] for r in crm.sql(
        "select id::text from conversations where contact_id = %s order by last_message_at desc nulls last limit 3",
        crm.contacts["main"],
    )]
    assert [c["id"] for c in row["conversations"]] == conv_ids
    for conv in row["conversations"]:
        want = [r[0] for r in crm.sql(
            "select id::text from messages where conversation_id = %s order by created_at desc limit 20", conv["id"]
        )]
        assert [m["id"] for m in conv["messages"]] == want
    assert len(row["contact_notes"]) == 10


def test_insert_update_upsert_delete(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["a"]
    conv = crm.conversations[0]
    inserted = (
        sb.table("messages")
        .insert({"workspace_id": ws, "conversation_id": conv, "direction": "outbound", "sender_type": "ai",
                 "content": "hello", "message_type": "loadtest"})
        .execute()
        .data
    )
    mid = inserted[0]["id"]
    assert inserted == sql_json(crm, "select * from messages where id = %s", mid)
    updated = sb.table("conversations").update({"last_message_preview": "hello"}).eq("id", conv).execute().data
    assert updated[0]["last_message_preview"] == "hello"
    assert crm.sql("select last_message_preview from conversations where id = %s", conv)[0][0] == "hello"
    new_id = str(uuid.uuid4())
    rows = [
        {"id": mid, "workspace_id": ws, "conversation_id": conv, "direction": "outbound", "sender_type": "ai",
         "content": "edited", "message_type": "loadtest"},
        {"id": new_id, "workspace_id": ws, "conversation_id": conv, "direction": "outbound", "sender_type": "ai",
         "content": "second", "message_type": "loadtest"},
    ]
    up = sb.table("messages").upsert(rows, on_conflict="id").execute().data
    assert {r["content"] for r in up} == {"edited", "second"}
    assert sorted(r[0] for r in crm.sql("select content from messages where id = any(%s::uuid[])", [mid, new_id])) == [
        "edited", "second",
    ]
    deleted = sb.table("messages").delete().eq("message_type", "loadtest").eq("conversation_id", conv).execute().data
    assert {r["id"] for r in deleted} == {mid, new_id}
    assert crm.sql("select count(*) from messages where id = any(%s::uuid[])", [mid, new_id])[0][0] == 0


def test_bulk_insert_with_missing_keys_uses_null(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["b"]
    contact = crm.contacts["other"]
    rows = [
        {"workspace_id": ws, "contact_id": contact, "content": "n1", "author_id": crm.members["b"]},
        {"workspace_id": ws, "contact_id": contact, "content": "n2"},
    ]
    got = sb.table("contact_notes").insert(rows).execute().data
    assert [r["author_id"] for r in got] == [crm.members["b"], None]
    sb.table("contact_notes").delete().in_("id", [r["id"] for r in got]).execute()


def test_count_head_and_rpc_get(sb: Client, crm: Crm) -> None:
    res = sb.table("messages").select("*", count="exact", head=True).eq("workspace_id", crm.workspaces["a"]).execute()
    assert res.count == crm.sql("select count(*) from messages where workspace_id = %s", crm.workspaces["a"])[0][0]
    got = sb.rpc(
        "get_contact_context", {"p_workspace_id": crm.workspaces["a"], "p_phone": PHONE}, get=True
    ).execute().data
    assert got["contact"]["id"] == crm.contacts["main"]


def test_rls_anon_member_service(sandbox_env: dict[str, str], crm: Crm) -> None:
    url = sandbox_env["SUPABASE_URL"]
    state = Path(sandbox_env["SANDBOX_DIR"])
    anon = create_client(url, sandbox_env["SUPABASE_ANON_KEY"])
    assert anon.table("contacts").select("id").execute().data == []
    member = create_client(
        url,
        sandbox_env["SUPABASE_ANON_KEY"],
        ClientOptions(headers={"Authorization": f"Bearer {mint_jwt(sub=crm.members['a'], state_dir=state)}"}),
    )
    seen = {r["workspace_id"] for r in member.table("contacts").select("workspace_id").execute().data}
    assert seen == {crm.workspaces["a"]}
    es = create_client(
        url,
        sandbox_env["SUPABASE_ANON_KEY"],
        ClientOptions(
            headers={"Authorization": f"Bearer {mint_jwt(sub=crm.members['b'], alg='ES256', state_dir=state)}"}
        ),
    )
    assert {r["workspace_id"] for r in es.table("conversations").select("workspace_id").execute().data} <= {
        crm.workspaces["b"]
    }
    service = create_client(url, sandbox_env["SUPABASE_SERVICE_ROLE_KEY"])
    mine = [crm.workspaces["a"], crm.workspaces["b"]]
    ids = {r["workspace_id"] for r in service.table("contacts").select("workspace_id").in_("workspace_id", mine).execute().data}
    assert {crm.workspaces["a"], crm.workspaces["b"]} <= ids


def test_upsert_variants_and_insert_count(sb: Client, crm: Crm) -> None:
    ws = crm.workspaces["b"]
    contact = crm.contacts["other"]
    note_id = str(uuid.uuid4())
    first = sb.table("contact_notes").insert(
        {"id": note_id, "workspace_id": ws, "contact_id": contact, "content": "v1"}, count="exact"
    ).execute()
    assert first.count == 1 and first.data[0]["content"] == "v1"
    kept = sb.table("contact_notes").upsert(
        {"id": note_id, "workspace_id": ws, "contact_id": contact, "content": "v2"}, ignore_duplicates=True
    ).execute()
    assert kept.data == []
    assert crm.sql("select content from contact_notes where id = %s", note_id) == [("v1",)]
    rows = [
        {"id": note_id, "workspace_id": ws, "contact_id": contact, "content": "v3"},
        {"workspace_id": ws, "contact_id": contact, "content": "fresh"},
    ]
    # default_to_null=False: a key missing from a row takes the column default (here: a new uuid)
    merged = sb.table("contact_notes").upsert(rows, default_to_null=False).execute().data
    assert sorted(r["content"] for r in merged) == ["fresh", "v3"]
    fresh_id = next(r["id"] for r in merged if r["content"] == "fresh")
    assert uuid.UUID(fresh_id) and fresh_id != note_id
    sb.table("contact_notes").delete().in_("id", [note_id, fresh_id]).execute()
    assert crm.sql("select count(*) from contact_notes where id = any(%s::uuid[])", [note_id, fresh_id]) == [(0,)]
