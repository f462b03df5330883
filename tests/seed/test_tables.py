"""Supabase row -> Convex form."""

from __future__ import annotations

from datetime import UTC, datetime

from seed.tables import BY_NAME, from_epoch_ms, parse_timestamp, table, to_convex, to_epoch_ms


def test_timestamp_forms_agree():
    ms = 1737453600123
    assert to_epoch_ms("2025-01-21T10:00:00.123+00:00") == ms
    assert to_epoch_ms("2025-01-21T10:00:00.123Z") == ms
    assert to_epoch_ms("2025-01-21 17:00:00.1234+07") == ms  # PostgreSQL text form, floored like the RPC
    assert to_epoch_ms(datetime(2025, 1, 21, 10, 0, 0, 123999, tzinfo=UTC)) == ms
    assert to_epoch_ms(from_epoch_ms(ms)) == ms
    assert to_epoch_ms(ms) == ms
    assert parse_timestamp("2025-01-21T10:00:00+00:00") == datetime(2025, 1, 21, 10, tzinfo=UTC)


def test_to_convex_omits_nulls_renames_and_keeps_uuid_refs():
    row = {
        "id": "c1", "workspace_id": "w1", "contact_id": "k1", "status": "open", "assigned_to": None,
        "last_message_at": None, "last_message_preview": None, "unread_count": 0,
        "created_at": "2025-01-21T10:00:00.5+00:00",
    }  # fmt: skip
    assert to_convex(BY_NAME["conversations"], row) == {
        "supabaseId": "c1", "workspaceId": "w1", "contactId": "k1", "status": "open", "unreadCount": 0,
        "createdAt": 1737453600500,
    }  # fmt: skip


def test_table_names_and_mutations():
    assert table("contactNotes") is table("contact_notes")
    assert table("workspace_members").mutation == "migrate:upsertWorkspaceMembers"
