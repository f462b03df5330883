"""``delta`` and ``window_record``: counters subtract, resets and evictions are flagged, shared
statements are totalled apart. (Snapshots of a real server: tests/reports/test_diagnose_sandbox.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from reports.diagnose import pgstat

REST_CONTACTS = ('WITH pgrst_source AS ( SELECT "public"."contacts"."id", row_to_json("contacts_workspace_1".*)::jsonb '
                 'AS "workspace" FROM "public"."contacts" LEFT JOIN LATERAL ( SELECT "workspaces_1"."id" FROM '
                 '"public"."workspaces" AS "workspaces_1" WHERE "workspaces_1"."id" = "public"."contacts"."workspace_id" '
                 ') AS "contacts_workspace_1" ON TRUE WHERE "public"."contacts"."phone" = $1 ) SELECT $2')
RPC = ('WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT $1 AS json_data) pgrst_payload, LATERAL '
       '(SELECT "public"."get_contact_context"("p_phone" := pgrst_body."p_phone") pgrst_scalar) pgrst_call) SELECT 1')
REST_CONVERSATIONS = ('WITH pgrst_source AS ( SELECT "public"."conversations"."id", "public"."conversations"."status" '
                      'FROM "public"."conversations" WHERE "public"."conversations"."contact_id" = $1 ) SELECT $2')
SETTINGS = ("select set_config('search_path', $1, true), set_config('role', $2, true), "
            "set_config('request.jwt.claims', $3, true)")


def stmt(qid: str, query: str, calls: int, total: float, role: str = "authenticated", mx: float = 9.0,
         **extra: Any) -> dict[str, Any]:
    return {"queryid": qid, "role": role, "toplevel": True, "query": query, "calls": calls,
            "total_exec_time_ms": total, "mean_exec_time_ms": total / max(calls, 1), "max_exec_time_ms": mx,
            "rows": calls, "shared_blks_hit": 3 * calls, "shared_blks_read": 0, **extra}


def snap(t: float, *rows: dict[str, Any]) -> dict[str, Any]:
    return {"t": t, "database": "127.0.0.1:54322/postgres", "server_version": "18.6", "statements": list(rows),
            "connections": {"max_connections": 200, "active": 0, "idle": 1, "total": 1, "by_role": {}}}


def test_delta_subtracts_and_keeps_the_window_only() -> None:
    before = snap(10, stmt("1", REST_CONTACTS, 100, 50.0), stmt("2", RPC, 10, 30.0), stmt("3", "select 1", 5, 1.0))
    after = snap(70, stmt("1", REST_CONTACTS, 160, 86.0, mx=12.5), stmt("2", RPC, 10, 30.0),
                 stmt("3", "select 1", 6, 1.5), stmt("4", SETTINGS, 64, 1.28))
    rows = pgstat.delta(before, after)
    assert [r["queryid"] for r in rows] == ["1", "4", "3"]  # by total time; the RPC did not run
    contacts = rows[0]
    assert (contacts["target"], contacts["call"]) == ("supabase_rest", "contacts")
    assert contacts["calls"] == 60 and contacts["total_exec_time_ms"] == pytest.approx(36.0)
    assert contacts["mean_exec_time_ms"] == pytest.approx(0.6)
    assert contacts["max_exec_time_ms_since_reset"] == 12.5 and contacts["reset"] is False
    assert contacts["shared_blks_hit"] == 180 and contacts["rows"] == 60
    assert rows[1]["calls"] == 64 and rows[1]["target"] == "supabase_any"  # new in the window: counted from 0
    assert rows[2]["target"] is None


def test_counters_going_backwards_are_a_reset() -> None:
    before = snap(0, stmt("1", REST_CONTACTS, 100, 50.0))
    after = snap(5, stmt("1", REST_CONTACTS, 7, 2.1))
    (row,) = pgstat.delta(before, after)
    assert row["reset"] is True and row["calls"] == 7 and row["total_exec_time_ms"] == pytest.approx(2.1)


def test_roles_are_separate_statements() -> None:
    before = snap(0, stmt("1", REST_CONTACTS, 10, 5.0, role="authenticated"))
    after = snap(5, stmt("1", REST_CONTACTS, 10, 5.0, role="authenticated"),
                 stmt("1", REST_CONTACTS, 4, 2.0, role="service_role"))
    (row,) = pgstat.delta(before, after)
    assert row["role"] == "service_role" and row["calls"] == 4


def test_window_record_per_target_and_shared() -> None:
    before = snap(10, stmt("1", REST_CONTACTS, 0, 0.0), stmt("2", RPC, 0, 0.0))
    after = snap(70, stmt("1", REST_CONTACTS, 200, 80.0), stmt("2", RPC, 50, 40.0), stmt("4", SETTINGS, 250, 5.0))
    rec = pgstat.window_record(before, after, {"supabase_rest": 200, "supabase_rpc": 50, "convex_query": 300})
    assert rec["status"] == "ok" and rec["window_s"] == 60 and rec["server_version"] == "18.6"
    # one found lookup: the contacts statement's mean plus set_config once per request (4 for supabase_rest)
    assert rec["per_target"]["supabase_rest"] == {"calls": 200, "total_exec_time_ms": 80.0,
                                                  "statements": ["contacts"],
                                                  "per_call": {"contacts": {"calls": 200, "mean_exec_time_ms": 0.4}},
                                                  "ms_per_found_lookup": 0.48, "lookups": 200,
                                                  "mean_ms_per_lookup": 0.4}
    assert rec["per_target"]["supabase_rpc"]["ms_per_found_lookup"] == 0.82
    assert rec["per_target"]["supabase_rpc"]["mean_ms_per_lookup"] == 0.8
    assert rec["shared"] == {"supabase_any set_config": {"calls": 250, "total_exec_time_ms": 5.0}}
    assert "convex_query" not in rec["per_target"]
    assert pgstat.window_record(before, after)["per_target"]["supabase_rest"].get("mean_ms_per_lookup") is None


def test_a_found_lookup_counts_each_call_once_whatever_the_misses() -> None:
    # 200 lookups found their contact (4 calls each, 2 listed here), 100 missed (the contacts call only);
    # the contacts statement ran under two roles, so two rows make one call
    before = snap(0)
    after = snap(60, stmt("1", REST_CONTACTS, 200, 100.0), stmt("5", REST_CONTACTS, 100, 20.0, role="anon"),
                  stmt("2", REST_CONVERSATIONS, 200, 60.0))
    rest = pgstat.window_record(before, after, {"supabase_rest": 300})["per_target"]["supabase_rest"]
    assert rest["per_call"] == {"contacts": {"calls": 300, "mean_exec_time_ms": 0.4},
                                "conversations": {"calls": 200, "mean_exec_time_ms": 0.3}}
    assert rest["ms_per_found_lookup"] == pytest.approx(0.7)  # not 180 ms / 300 lookups
    assert rest["mean_ms_per_lookup"] == pytest.approx(0.6)


def test_database_label_never_shows_credentials() -> None:
    assert pgstat.database_label("postgresql://u:secret@db.x.supabase.co:5432/postgres") == "db.x.supabase.co:5432/postgres"
    assert pgstat.database_label("not a url") == "DATABASE_URL"
    assert pgstat.unavailable_record("no") == {"status": "unavailable", "reason": "no"}
