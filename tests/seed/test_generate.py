"""Generator: determinism, validity, and the shape of the distributions."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict

import pytest

from seed.generate import END_MS, generate
from seed.tables import TABLES

PHONE = re.compile(r"^628[1-9][0-9]{8,10}$")


@pytest.fixture(scope="module")
def data():
    return generate(contacts=3000, seed=42)


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = generate(200, seed=3), generate(200, seed=3), generate(200, seed=4)
    assert a.rows == b.rows
    assert a.rows["contacts"] != c.rows["contacts"]


def test_first_workspace_and_members(data):
    assert data.workspaces[0]["name"] == "Eagle Overseas"
    roles = Counter((m["workspace_id"], m["role"]) for m in data.rows["workspace_members"])
    for w in data.workspaces:
        assert roles[(w["id"], "owner")] == 1
    assert len({w["slug"] for w in data.workspaces}) == len(data.workspaces)


def test_phones_unique_valid_indonesian_mobiles(data):
    phones = [c["phone"] for c in data.rows["contacts"]]
    assert len(set(phones)) == len(phones) == 3000
    assert all(PHONE.match(p) for p in phones)


def test_ids_unique_and_references_resolve(data):
    ids = [r["id"] for t in TABLES for r in data.rows[t.name]]
    assert len(set(ids)) == len(ids)
    have = {t.name: {r["id"] for r in data.rows[t.name]} for t in TABLES}
    for t in TABLES:
        for col in t.refs:
            assert col.ref is not None
            assert all(r[col.name] in have[col.ref] for r in data.rows[t.name]), (t.name, col.name)


def test_no_ties_within_a_contact(data):
    """Newest-first lists must order identically on PostgreSQL and Convex."""
    by_contact = defaultdict(list)
    for c in data.rows["conversations"]:
        by_contact[c["contact_id"]].append(c["last_message_at"])
    for times in by_contact.values():
        assert sum(t is None for t in times) <= 1
        known = [t for t in times if t is not None]
        assert len(set(known)) == len(known)
    by_conv = defaultdict(list)
    for m in data.rows["messages"]:
        by_conv[m["conversation_id"]].append(m["created_at"])
    assert all(len(set(v)) == len(v) for v in by_conv.values())
    notes = defaultdict(list)
    for n in data.rows["contact_notes"]:
        notes[n["contact_id"]].append(n["created_at"])
    assert all(len(set(v)) == len(v) for v in notes.values())


def test_timestamps_are_ms_integers_in_the_past_and_consistent(data):
    msgs = defaultdict(list)
    for m in data.rows["messages"]:
        msgs[m["conversation_id"]].append(m)
    for c in data.rows["conversations"]:
        mine = msgs[c["id"]]
        if mine:
            last = max(mine, key=lambda m: m["created_at"])
            assert c["last_message_at"] == last["created_at"]
            assert c["last_message_preview"] == last["content"][:100]
            assert c["created_at"] < min(m["created_at"] for m in mine)
        else:
            assert c["last_message_at"] is None and c["last_message_preview"] is None
    for t in TABLES:
        for r in data.rows[t.name]:
            for col in t.columns:
                v = r[col.name]
                if col.kind == "ts" and v is not None:
                    assert isinstance(v, int) and 1_600_000_000_000 < v <= END_MS
    assert all(c["updated_at"] >= c["created_at"] for c in data.rows["contacts"])
    # millisecond precision is actually used (not whole seconds)
    assert sum(m["created_at"] % 1000 != 0 for m in data.rows["messages"]) > 0.9 * len(data.rows["messages"])


def test_heavy_tailed_activity(data):
    per_contact: Counter[str] = Counter()
    conv_owner = {c["id"]: c["contact_id"] for c in data.rows["conversations"]}
    for m in data.rows["messages"]:
        per_contact[conv_owner[m["conversation_id"]]] += 1
    counts = sorted(per_contact.values())
    median = statistics.median(counts)
    p99 = counts[int(len(counts) * 0.99)]
    assert median <= 12
    assert p99 >= 6 * median
    assert max(counts) >= 150
    top = sum(counts[-len(counts) // 20 :]) / sum(counts)
    assert top > 0.2  # the busiest 5% of contacts hold over a fifth of all messages


def test_nullable_columns_are_sometimes_null(data):
    for t in TABLES:
        for col in t.columns:
            values = [r[col.name] for r in data.rows[t.name]]
            nulls = sum(v is None for v in values)
            if col.nullable and len(values) > 100:
                assert 0 < nulls < len(values), (t.name, col.name)
            if not col.nullable:
                assert nulls == 0, (t.name, col.name)


def test_metadata_has_no_floats_and_text_lengths_vary(data):
    def floats(v):
        if isinstance(v, float):
            return True
        if isinstance(v, dict):
            return any(floats(x) for x in v.values())
        if isinstance(v, list):
            return any(floats(x) for x in v)
        return False

    assert not any(floats(c["metadata"]) for c in data.rows["contacts"])
    lengths = [len(m["content"]) for m in data.rows["messages"]]
    assert min(lengths) < 20 and max(lengths) > 500
    assert 20 < statistics.median(lengths) < 150
    assert any(
        ord(ch) > 0xFFFF for m in data.rows["messages"] for ch in m["content"]
    )  # emoji survive encoding tests


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate(0)
    with pytest.raises(ValueError):
        generate(10, workspaces=99)
