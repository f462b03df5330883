"""get_contact_context returns the canonical lookup of docs/formats.md, through the gateway and SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.tokens import mint_jwt
from supabase import create_client
from tests.sandbox.conftest import PHONE, Crm

pytestmark = pytest.mark.sandbox
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // timedelta(milliseconds=1)


def expected(crm: Crm, workspace: str, phone: str, limit: int = 20) -> dict[str, Any] | None:
    """The canonical lookup, assembled in Python from plain SQL rows."""
    rows = crm.sql(
        """select c.id::text, c.workspace_id::text, c.phone, c.name, c.email, c.tags, c.lead_status, c.lead_score,
                  c.metadata, c.created_at, c.updated_at, w.id::text, w.name
           from contacts c join workspaces w on w.id = c.workspace_id where c.workspace_id = %s and c.phone = %s""",
        workspace,
        phone,
    )
    if not rows:
        return None
    r = rows[0]
    convs = crm.sql(
        """select id::text, status, assigned_to::text, last_message_at, last_message_preview, unread_count, created_at
           from conversations where contact_id = %s""",
        r[0],
    )
    far = datetime.min.replace(tzinfo=UTC)
    convs.sort(key=lambda c: (c[3] is not None, c[3] or far), reverse=True)
    out_convs = []
    for c in convs[:3]:
        msgs = crm.sql(
            "select id::text, direction, sender_type, content, message_type, created_at from messages where conversation_id = %s",
            c[0],
        )
        msgs.sort(key=lambda m: m[5], reverse=True)  # type: ignore[arg-type, return-value]
        out_convs.append(
            {
                "id": c[0], "status": c[1], "assignedTo": c[2], "lastMessageAt": ms(c[3]),  # type: ignore[arg-type]
                "lastMessagePreview": c[4], "unreadCount": c[5], "createdAt": ms(c[6]),  # type: ignore[arg-type]
                "messages": [
                    {"id": m[0], "direction": m[1], "senderType": m[2], "content": m[3], "messageType": m[4],
                     "createdAt": ms(m[5])}  # type: ignore[arg-type]
                    for m in msgs[:limit]
                ],
            }
        )
    notes = crm.sql("select id::text, author_id::text, content, created_at from contact_notes where contact_id = %s", r[0])
    notes.sort(key=lambda n: n[3], reverse=True)  # type: ignore[arg-type, return-value]
    return {
        "contact": {
            "id": r[0], "workspaceId": r[1], "phone": r[2], "name": r[3], "email": r[4], "tags": r[5],
            "leadStatus": r[6], "leadScore": r[7], "metadata": r[8],
            "createdAt": ms(r[9]), "updatedAt": ms(r[10]),  # type: ignore[arg-type]
        },
        "workspace": {"id": r[11], "name": r[12]},
        "conversations": out_convs,
        "notes": [{"id": n[0], "authorId": n[1], "content": n[2], "createdAt": ms(n[3])} for n in notes[:10]],  # type: ignore[arg-type]
    }


def test_rpc_matches_canonical_lookup_via_supabase_py(sandbox_env: dict[str, str], crm: Crm) -> None:
    sb = create_client(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"])
    ws = crm.workspaces["a"]
    got = sb.rpc("get_contact_context", {"p_workspace_id": ws, "p_phone": PHONE}).execute().data
    want = expected(crm, ws, PHONE)
    assert got == want
    assert want is not None and len(want["conversations"]) == 3 and len(want["notes"]) == 10
    assert [len(c["messages"]) for c in want["conversations"]] == [20, 20, 20]
    # the conversation with a null last_message_at is not among the newest 3 (nulls last)
    assert all(c["lastMessageAt"] is not None for c in got["conversations"])


def test_rpc_key_order_and_nulls_present(sandbox_env: dict[str, str], crm: Crm) -> None:
    resp = httpx.post(
        f"{sandbox_env['SUPABASE_URL']}/rest/v1/rpc/get_contact_context",
        headers={"apikey": sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]},
        json={"p_workspace_id": crm.workspaces["a"], "p_phone": "6289999000001"},
    )
    assert resp.status_code == 200
    body = json.loads(resp.content)
    assert list(body) == ["contact", "workspace", "conversations", "notes"]
    assert list(body["contact"]) == [
        "id", "workspaceId", "phone", "name", "email", "tags", "leadStatus", "leadScore", "metadata", "createdAt", "updatedAt",
    ]
    assert body["contact"]["name"] is None and body["conversations"] == [] and body["notes"] == []
    assert isinstance(body["contact"]["createdAt"], int)


def test_rpc_message_limit_and_not_found(sandbox_env: dict[str, str], crm: Crm) -> None:
    sb = create_client(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"])
    ws = crm.workspaces["a"]
    got = sb.rpc("get_contact_context", {"p_workspace_id": ws, "p_phone": PHONE, "p_message_limit": 5}).execute().data
    assert got == expected(crm, ws, PHONE, limit=5)
    missing = sb.rpc("get_contact_context", {"p_workspace_id": ws, "p_phone": "6280000000000"}).execute()
    assert missing.data is None
    # the same phone in another workspace is another contact
    other = sb.rpc("get_contact_context", {"p_workspace_id": crm.workspaces["b"], "p_phone": PHONE}).execute().data
    assert other["contact"]["id"] == crm.contacts["other"]


def test_rpc_direct_sql_equals_gateway(sandbox_env: dict[str, str], crm: Crm) -> None:
    ws = crm.workspaces["a"]
    direct = crm.sql("select get_contact_context(%s, %s)::text", ws, PHONE)[0][0]
    resp = httpx.post(
        f"{sandbox_env['SUPABASE_URL']}/rest/v1/rpc/get_contact_context",
        headers={"apikey": sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]},
        json={"p_workspace_id": ws, "p_phone": PHONE},
    )
    assert resp.content.decode() == direct


def test_rpc_respects_rls(sandbox_env: dict[str, str], crm: Crm) -> None:
    url = f"{sandbox_env['SUPABASE_URL']}/rest/v1/rpc/get_contact_context"
    args = {"p_workspace_id": crm.workspaces["a"], "p_phone": PHONE}
    state = sandbox_env["SANDBOX_DIR"]
    from pathlib import Path

    member = mint_jwt(sub=crm.members["a"], state_dir=Path(state))
    outsider = mint_jwt(sub=crm.members["b"], alg="ES256", state_dir=Path(state))
    key = {"apikey": sandbox_env["SUPABASE_ANON_KEY"]}
    ok = httpx.post(url, json=args, headers={**key, "Authorization": f"Bearer {member}"})
    assert ok.status_code == 200 and ok.json()["contact"]["id"] == crm.contacts["main"]
    hidden = httpx.post(url, json=args, headers={**key, "Authorization": f"Bearer {outsider}"})
    assert hidden.status_code == 200 and hidden.json() is None
    anon = httpx.post(url, json=args, headers=key)
    assert anon.status_code == 401 and anon.json()["code"] == "42501"


# The hot-path index each table of the lookup is read through (supabase/migrations).
HOT_PATH_INDEXES = {
    "contacts": "contacts_workspace_id_phone_key",
    "workspaces": "workspaces_pkey",
    "conversations": "conversations_contact_id_last_message_at_idx",
    "messages": "messages_conversation_id_created_at_idx",
    "contact_notes": "contact_notes_contact_id_created_at_idx",
}


def _index_names(node: dict[str, Any]) -> set[str]:
    """The indexes a node and its children read (a bitmap heap scan's are in its bitmap index scans)."""
    names = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", ()):
        if "Relation Name" not in child:
            names |= _index_names(child)
    return names


def _scans(node: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(node type, relation, indexes) of every table scan in a JSON plan tree."""
    out = []
    if "Relation Name" in node:
        out.append((node["Node Type"], node["Relation Name"], _index_names(node)))
    for child in node.get("Plans", ()):
        out += _scans(child)
    return out


def test_rpc_plan_is_index_driven(crm: Crm) -> None:
    """get_contact_context's own statement, as PostgreSQL plans it inside the function (auto_explain logs a
    function's nested statements), reads every table through its hot-path index. Sequential scans are
    priced out, so the few rows of this data set cannot make one cheaper: a missing index still shows."""
    plans: list[str] = []
    with psycopg.connect(crm.database_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        try:
            conn.execute("load 'auto_explain'")
        except psycopg.errors.UndefinedFile:
            pytest.skip("this PostgreSQL has no auto_explain module")
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                        "auto_explain.log_format = json", "auto_explain.log_level = notice",
                        "client_min_messages = notice", "enable_seqscan = off"):
            conn.execute(f"set {setting}")
        got = conn.execute("select public.get_contact_context(%s, %s)", (crm.workspaces["a"], PHONE)).fetchone()
    assert got is not None and got[0]["contact"]["id"] == crm.contacts["main"]
    explained = [json.loads(text.split("plan:", 1)[1]) for text in plans if "plan:" in text]
    (body,) = [p for p in explained if "from public.contacts c" in p["Query Text"]]
    scans = _scans(body["Plan"])
    assert {relation for _, relation, _ in scans} == set(HOT_PATH_INDEXES), scans
    for node_type, relation, indexes in scans:
        assert node_type in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), (relation, node_type, scans)
        assert indexes == {HOT_PATH_INDEXES[relation]}, (relation, indexes)
