"""The statements ``diagnose`` explains through DATABASE_URL are PostgREST v14's, and ``classify``
names them (and the sandbox gateway's) by the Locust call that sends them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.targets as T
from harness.targets import Endpoints
from reports.diagnose import pgrst
from reports.diagnose.catalog import Database
from reports.diagnose.pgstat import classify

FIXTURES = Path(__file__).parent / "fixtures" / "diagnose"
WS = "6513270e-269e-4d37-b2a7-4de452e6b438"
CONTACT = "8c4aa2e6-ba01-4ec3-b6c5-221d613439dd"
CONVS = ["5062f91f-45ad-426a-b861-89c0724a89c9", "0b5e2cbb-77b8-4a4e-a0bd-4e1c01e52b1f"]
PHONE = "6281110014609"
EP = Endpoints(supabase_url="http://127.0.0.1:54321", supabase_key="anon")


@pytest.fixture(scope="module")
def catalog() -> pgrst.Catalog:
    """The catalog of the shipped schema, as read from a real database (fixture capture)."""
    doc = json.loads((FIXTURES / "plans-shipped.json").read_text())
    return Database.from_json(doc["catalog"]).pgrst


def requests() -> list[tuple[str, T.Request]]:
    return [
        ("supabase_rest", T.rest_contact(EP, WS, PHONE, {})),
        ("supabase_rest", T.rest_conversations(EP, CONTACT, {})),
        ("supabase_rest", T.rest_messages(EP, CONVS, {})),
        ("supabase_rest", T.rest_notes(EP, CONTACT, {})),
        ("supabase_nested", T.nested(EP, WS, PHONE, {})),
        ("supabase_rpc", T.rpc(EP, WS, PHONE, {})),
        ("supabase_write", T.rest_contact_id(EP, WS, PHONE, {})),
        ("supabase_write", T.rest_newest_conversation(EP, CONTACT, {})),
    ]


def test_phone_lookup_is_written_as_postgrest_v14_writes_it(catalog: pgrst.Catalog) -> None:
    st = pgrst.statement_for(catalog, "GET", T.rest_contact(EP, WS, PHONE, {}).url, None)
    cols = ", ".join(f'"public"."contacts"."{c}"' for c in T.CONTACT_COLUMNS.split(",")[:11])
    assert st.sql == (
        f'WITH pgrst_source AS ( SELECT {cols}, row_to_json("contacts_workspace_1".*)::jsonb AS "workspace" '
        'FROM "public"."contacts" LEFT JOIN LATERAL ( SELECT "workspaces_1"."id", "workspaces_1"."name" '
        'FROM "public"."workspaces" AS "workspaces_1" WHERE "workspaces_1"."id" = "public"."contacts"."workspace_id"   '
        'LIMIT $1 OFFSET $2 ) AS "contacts_workspace_1" ON TRUE WHERE  "public"."contacts"."workspace_id" = $3 AND  '
        '"public"."contacts"."phone" = $4   LIMIT $5 OFFSET $6 )  SELECT null::bigint AS total_result_set, '
        "pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, "
        "nullif(current_setting('response.headers', true), '') AS response_headers, "
        "nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted "
        "FROM ( SELECT * FROM pgrst_source ) _postgrest_t"
    )
    # values as text (PostgreSQL type unknown), in the order they appear; db-max-rows on every level
    assert st.params == ["1000", "0", WS, PHONE, "1", "0"]
    assert st.read_only and st.method == "GET" and st.path == "/contacts"
    assert st.explain().startswith("EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) WITH pgrst_source AS ( SELECT")


def test_nested_select_aliases_follow_plan_hs(catalog: pgrst.Catalog) -> None:
    st = pgrst.statement_for(catalog, "GET", T.nested(EP, WS, PHONE, {}).url, None)
    for fragment in (
        'COALESCE( "contacts_conversations_1"."contacts_conversations_1", \'[]\') AS "conversations"',
        'LEFT JOIN LATERAL ( SELECT json_agg("contacts_conversations_1")::jsonb AS "contacts_conversations_1" '
        'FROM (SELECT "conversations_1"."id"',
        'FROM "public"."conversations" AS "conversations_1"',
        'COALESCE( "conversations_messages_2"."conversations_messages_2", \'[]\') AS "messages"',
        'WHERE "messages_2"."conversation_id" = "conversations_1"."id"  ORDER BY "messages_2"."created_at" DESC  LIMIT',
        'ORDER BY "conversations_1"."last_message_at" DESC NULLS LAST LIMIT',
        'AS "contacts_contact_notes_1" ON TRUE',
    ):
        assert fragment in st.sql, fragment
    # embeds' limits first (they come first in the text), the root's last
    assert st.params == ["1000", "0", "20", "0", "3", "0", "10", "0", WS, PHONE, "1", "0"]


def test_in_list_and_rpc_body(catalog: pgrst.Catalog) -> None:
    msgs = pgrst.statement_for(catalog, "GET", T.rest_messages(EP, CONVS, {}).url, None)
    assert '"public"."messages"."conversation_id" = ANY ($1) ' in msgs.sql
    assert msgs.params[0] == "{" + ",".join(f'"{c}"' for c in CONVS) + "}"
    req = T.rpc(EP, WS, PHONE, {})
    rpc = pgrst.statement_for(catalog, req.method, req.url, req.body)
    assert rpc.sql.startswith(
        "WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT $1 AS json_data) pgrst_payload, "
        'LATERAL (SELECT "p_workspace_id", "p_phone", "p_message_limit" FROM json_to_record(pgrst_payload.json_data) '
        'AS _("p_workspace_id" uuid, "p_phone" text, "p_message_limit" integer) LIMIT 1) pgrst_body , '
        'LATERAL (SELECT "public"."get_contact_context"("p_workspace_id" := pgrst_body."p_workspace_id", '
    )
    assert rpc.sql.endswith('FROM (SELECT "get_contact_context".* FROM "pgrst_source" AS "get_contact_context"   '
                            "LIMIT $2 OFFSET $3) _postgrest_t")
    assert rpc.params[0] == pgrst.JsonParam(req.body.decode())  # type: ignore[union-attr]
    assert rpc.read_only  # get_contact_context is STABLE: a read-only transaction, as PostgREST
    # the function's `set search_path = ''`, applied per transaction as PostgREST does (proconfig's spelling)
    assert rpc.function_settings == (("search_path", '""'),)


def test_transaction_settings_are_postgrest_s(catalog: pgrst.Catalog) -> None:
    st = pgrst.statement_for(catalog, "GET", T.rest_notes(EP, CONTACT, {}).url, None)
    sql, params = pgrst.tx_settings(st, "authenticated", {"sub": "u1", "aud": "authenticated"}, catalog)
    # the same text pg_stat_statements shows for PostgREST on hosted Supabase (role settings before the role)
    assert sql.startswith(
        "select set_config('search_path', $1, true), set_config($2, $3, true), set_config('role', $4, true), "
        "set_config('request.jwt.claims', $5, true), set_config('request.method', $6, true)"
    )
    assert params[:4] == ['"public", "public"', "statement_timeout", "8s", "authenticated"]
    assert json.loads(params[4]) == {"sub": "u1", "aud": "authenticated", "role": "authenticated"}
    assert params[5:7] == ["GET", "/contact_notes"]


@pytest.mark.parametrize("bad", [
    "/rest/v1/contacts?select=id::text",
    "/rest/v1/contacts?select=name->first",
    "/rest/v1/contacts?or=(a.eq.1,b.eq.2)",
    "/rest/v1/contacts?select=id,nope(id)",
    "/rest/v1/contacts?phone=fts.x",
    "/rest/v1/contacts?select=id&nope.limit=1",
])
def test_grammar_outside_the_lookups_is_refused(catalog: pgrst.Catalog, bad: str) -> None:
    with pytest.raises(pgrst.Unsupported):
        pgrst.statement_for(catalog, "GET", f"http://127.0.0.1:54321{bad}", None)


def test_every_request_of_the_paths_classifies_to_its_call(catalog: pgrst.Catalog) -> None:
    for target, req in requests():
        st = pgrst.statement_for(catalog, req.method, req.url, req.body)
        assert classify(st.sql) == (target, req.what), req.what


def test_statements_of_other_shapes_are_not_claimed() -> None:
    for sql in (
        "select 1",
        "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
        'WITH pgrst_source AS ( SELECT "public"."workspaces"."id" FROM "public"."workspaces"  ) SELECT 1',
        'WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT "public"."other_fn"() pgrst_scalar) '
        "pgrst_call) SELECT 1",
        "select set_config($1, $2, $3)",
    ):
        assert classify(sql) is None, sql
