"""The realtime targets' pure parts: markers, Convex timestamps, and the master's delivery count."""

from __future__ import annotations

import base64

from harness.realtime import RealtimeBook, SubscriberLog, decode_ts, marked_content, parse_marker


def test_a_marked_content_names_its_write_and_when_it_was_sent() -> None:
    content, marker, sent = marked_content()
    assert parse_marker(content) == (marker, int(sent * 1_000_000) / 1_000_000)
    assert parse_marker("loadtest 0123456789ab") is None  # the lookup task's writes carry no send time
    assert parse_marker("hello") is None and parse_marker(None) is None


def test_convex_timestamps_are_little_endian_nanoseconds() -> None:
    ns = 1_795_000_000_123_456_789
    assert decode_ts(base64.b64encode(ns.to_bytes(8, "little")).decode()) == ns / 1e9
    assert decode_ts("not base64!") is None and decode_ts(None) is None


def test_deliveries_owed_seen_missed_and_out_of_order() -> None:
    writer, reader = RealtimeBook(), RealtimeBook()
    # writes to workspace A at t = 10, 11, 12, 13, 20 (the last within the 3 s grace before the end at 22)
    for i, t in enumerate((10.0, 11.0, 12.0, 13.0, 20.0)):
        writer.wrote("convex_sub", "A", f"m{i}", t)
    writer.wrote("convex_sub", "B", "b0", 12.0)
    early = SubscriberLog("convex_sub", "A", since_s=9.0)
    for m, t in (("m0", 10.0), ("m2", 12.0), ("m1", 11.0), ("m4", 20.0)):  # m1 after m2: out of order; m3 never
        early.saw(m, t)
    late = SubscriberLog("convex_sub", "A", since_s=11.5)  # subscribed after m0 and m1 were written
    late.saw("m2", 12.0)
    late.saw("m3", 13.0)
    reader.log("s1", early)
    reader.log("s2", late)
    master = RealtimeBook()
    master.merge(writer.drain())
    master.merge(reader.drain())
    assert master.summary(started_s=5.0, ended_s=22.0) == {
        "convex_sub": {"writes": 6, "subscribers": 2, "expected": 6, "seen": 5, "missed": 1, "out_of_order": 1},
    }
    assert writer.drain() == {"written": {}, "subscribers": {}}  # drained: the next report sends only what is new
