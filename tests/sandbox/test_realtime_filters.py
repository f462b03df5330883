"""`postgres_changes` filter strings: parsing (with Realtime's error messages) and
matching typed row values (as to_jsonb renders them)."""

from __future__ import annotations

import pytest

from sandbox.realtime.filters import FilterError, all_hold, parse
from sandbox.realtime.phoenix import V1, V2, serializer_for


def typed(text: str, *values: object) -> list:
    filters = parse(text)
    for f, v in zip(filters, values, strict=True):
        f.values = list(v) if isinstance(v, tuple) else [v]
    return filters


def test_parse_operators_lists_and_conjunctions() -> None:
    [f] = parse("workspace_id=eq.5f64af07-6536-443c-abee-5088df86bb5c")
    assert (f.column, f.op, f.raw) == ("workspace_id", "eq", "5f64af07-6536-443c-abee-5088df86bb5c")
    [f] = parse('status=in.(open,"pen,ding")')
    assert f.texts() == ["open", "pen,ding"]
    assert [(f.column, f.op) for f in parse("unread_count=gt.0,unread_count=lte.9")] == [
        ("unread_count", "gt"), ("unread_count", "lte")
    ]
    assert parse("") == [] and parse("   ") == [] and parse(None) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject=foo.hey", 'Error parsing `filter` params: ["foo", "hey"]'),
        ("undefined", 'Error parsing `filter` params: ["undefined"]'),
        ("id=in.1,2", 'Error parsing `filter` params: ["in", "1"]'),
        ("id=in.(" + ",".join(map(str, range(101))) + ")", "too many values for `in` filter. Maximum 100"),
    ],
)
def test_parse_errors_read_like_realtimes(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(text)
    assert str(info.value) == message


def test_matching_typed_values() -> None:
    row = {"id": 7, "status": "open", "at": "2026-01-21T10:00:00.5+00:00", "note": None}
    assert all_hold(typed("id=eq.7", 7.0), row)  # numbers by value
    assert not all_hold(typed("id=neq.7", 7), row)
    assert all_hold(typed("status=in.(open,closed)", ("open", "closed")), row)
    assert all_hold(typed("id=gt.6,id=lte.7", 6, 7), row)
    assert all_hold(typed("at=lt.2026-01-21T11:00:00Z", "2026-01-21T11:00:00+00:00"), row)  # instants, not text
    assert not all_hold(typed("note=eq.x", "x"), row) and not all_hold(typed("gone=eq.x", "x"), row)


def test_serializers_by_vsn() -> None:
    assert isinstance(serializer_for(None), V1) and isinstance(serializer_for("1.0.0"), V1)
    assert isinstance(serializer_for("2.0.0"), V2)
    assert serializer_for("1.1.0") is None and serializer_for("3.0.0") is None and serializer_for("x") is None
    frame = V2().decode('["1","2","realtime:a","phx_join",{}]')
    assert (frame.join_ref, frame.ref, frame.topic, frame.event) == ("1", "2", "realtime:a", "phx_join")
    assert V1().reply(frame, "ok", {}) == (
        '{"topic":"realtime:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}'
    )
