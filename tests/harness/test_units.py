"""Unit tests: targets' wire format, HDR record/ship/merge, workload, pacer, shape, options, decision."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
from hdrh.histogram import HdrHistogram

from harness import targets as T
from harness.hdr import Recorder, to_us
from harness.options import AUTO, HarnessOptions
from harness.pacer import Pacer
from harness.settings import load_settings
from harness.steps import Step, parse_steps
from harness.workload import Sampler, WorkloadError, load_file, pinned, resolve

WS = "11111111-2222-4333-8444-555555555555"
EP = T.Endpoints(
    supabase_url="https://abc.supabase.co", convex_url="https://x-y-1.convex.cloud",
    convex_site_url="https://x-y-1.convex.site", app_url="http://127.0.0.1:3000",
    supabase_key="srk", supabase_bearer="srk", crm_api_key="k", convex_token="tok",
)


def qs(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


# ---------------------------------------------------------------- targets


def test_rest_requests_mirror_the_app() -> None:
    h = EP.supabase_headers()
    r = T.rest_contact(EP, WS, "6281234567890", h)
    assert r.method == "GET" and urlsplit(r.url).path == "/rest/v1/contacts"
    q = qs(r.url)
    assert q["workspace_id"] == f"eq.{WS}" and q["phone"] == "eq.6281234567890" and q["limit"] == "1"
    assert "workspace:workspaces(id,name)" in q["select"]
    c = qs(T.rest_conversations(EP, "cid", h).url)
    assert c["order"] == "last_message_at.desc.nullslast" and c["limit"] == "3" and c["contact_id"] == "eq.cid"
    m = qs(T.rest_messages(EP, ["a", "b"], h).url)
    assert m["conversation_id"] == "in.(a,b)" and m["order"] == "created_at.desc" and "limit" not in m
    n = qs(T.rest_notes(EP, "cid", h).url)
    assert n["order"] == "created_at.desc" and n["limit"] == "10"
    assert h["apikey"] == "srk" and h["Authorization"] == "Bearer srk"


def test_in_list_quotes_reserved_characters() -> None:
    assert T.in_list(["a", "b,c", 'd"e']) == 'in.(a,"b,c","d\\"e")'


def test_nested_rpc_convex_and_api_requests() -> None:
    n = qs(T.nested(EP, WS, "628", {}).url)
    assert "conversations(" in n["select"] and n["conversations.limit"] == "3" and n["contact_notes.limit"] == "10"
    r = T.rpc(EP, WS, "628", {})
    assert r.method == "POST" and r.url.endswith("/rest/v1/rpc/get_contact_context")
    assert json.loads(r.body or b"") == {"p_workspace_id": WS, "p_phone": "628", "p_message_limit": 20}
    h = T.convex_http(EP, WS, "628")
    assert h.url.startswith("https://x-y-1.convex.site/contacts/by-phone?") and h.headers["x-api-key"] == "k"
    q = T.convex_query(EP, WS, "628", "tok")
    assert q.url == "https://x-y-1.convex.cloud/api/query" and q.headers["Authorization"] == "Bearer tok"
    assert json.loads(q.body or b"") == {"path": "contacts:getContextByPhone",
                                          "args": {"workspaceId": WS, "phone": "628"}, "format": "json"}
    assert "/api/contacts/by-phone-convex?" in T.api_route(EP, "api_convex", WS, "628").url
    assert "/api/contacts/by-phone?" in T.api_route(EP, "api_supabase", WS, "628").url


def test_writes_are_marked_loadtest() -> None:
    r = T.rest_insert_message(EP, WS, "conv", "hi", {})
    assert json.loads(r.body or b"")["message_type"] == "loadtest"
    assert r.headers["Prefer"] == "return=minimal"
    o = T.convex_outbound(EP, WS, "628", "hi")
    assert o.url.endswith("/messages/outbound") and json.loads(o.body or b"")["phone"] == "628"


def test_endpoints_never_show_keys() -> None:
    text = repr(EP) + repr(T.rest_contact(EP, WS, "1", EP.supabase_headers())) + json.dumps(T.describe(EP, T.TARGET_IDS))
    for secret in ("srk", "tok"):
        assert secret not in text.replace("supabase", "")
    assert T.describe(EP, ["convex_query"])["convex_query"] == {
        "host": "https://x-y-1.convex.cloud", "level": "direct", "round_trips": 1}


def test_endpoints_missing_names_the_variable() -> None:
    ep = T.Endpoints(supabase_url="http://127.0.0.1:54321")
    assert ep.missing("supabase_rest") == "supabase_rest: SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY) is not set"
    assert ep.missing("api_convex") == "api_convex: APP_URL is not set"


def test_endpoints_from_settings_derives_site_and_uses_member_token_without_service_role() -> None:
    s = load_settings({"CONVEX_URL": "http://127.0.0.1:3210", "SUPABASE_URL": "http://127.0.0.1:54321",
                       "SUPABASE_ANON_KEY": "anon", "ENV_FILE": "/nonexistent"}, root="/nonexistent")
    ep = T.Endpoints.from_settings(s)
    assert ep.convex_site_url == "http://127.0.0.1:3211"
    assert ep.supabase_headers("member") == {"apikey": "anon", "Authorization": "Bearer member", "Accept": "application/json"}


# ---------------------------------------------------------------- HDR


def test_recorder_ship_and_merge_is_lossless() -> None:
    a, b, whole = Recorder(), Recorder(), Recorder()
    for r in (a, b, whole):
        r.start(0)
    for i in range(1, 2000):
        (a if i % 2 else b).record("lookup", "convex_query", i * 0.37, False, 1)
        whole.record("lookup", "convex_query", i * 0.37, False, 1)
    a.record("lookup", "convex_query", 5.0, True, 1)
    master = Recorder()
    master.merge(a.drain())
    master.merge(b.drain())
    assert a.entries == {} and b.entries == {}
    e, w = master.get("lookup", "convex_query"), whole.get("lookup", "convex_query")
    assert e is not None and w is not None
    assert e.count == 1999 and e.failures == 1 and e.round_trips[1] == 2000
    for p in (50, 95, 99, 99.9):
        assert e.hist.get_value_at_percentile(p) == w.hist.get_value_at_percentile(p)
    assert e.min_us == to_us(0.37) and e.max_us == to_us(1999 * 0.37)


def test_recorder_warmup_and_steps() -> None:
    now = [100.0]
    r = Recorder(warmup_s=5, clock=lambda: now[0])
    r.start()
    r.record("lookup", "x", 1.0, False)
    assert r.get("lookup", "x") is None and r.warmup_dropped == 1
    now[0] = 106.0
    r.step = 2
    r.record("lookup", "x", 1.0, False)
    whole, step = r.get("lookup", "x", None), r.get("lookup", "x", 2)
    assert whole is not None and step is not None and whole.count == step.count == 1
    r.record("GET", "x contacts", 1.0, False)
    r.record("GET", "plain", 1.0, False)
    entries = r.artifact_entries({"x"})
    assert [(e["type"], e["name"], e["step"]) for e in entries] == [
        ("GET", "x contacts", None), ("GET", "x contacts", 2), ("lookup", "x", None), ("lookup", "x", 2)]
    assert HdrHistogram.decode(entries[2]["hdr"].encode()).get_total_count() == 1


def test_values_are_clamped_to_the_histogram_range() -> None:
    assert to_us(0.0) == 1 and to_us(10**9) == 3_600_000_000


# ---------------------------------------------------------------- workload


def _workload_file(tmp_path: Path, **over: object) -> Path:
    doc: dict[str, object] = {
        "format": "crm-workload/1", "generated_at": "2026-01-01T00:00:00Z",
        "workspaces": [{"id": WS, "name": "E", "member_user_id": "u"}],
        "known": [{"workspace_id": WS, "phone": "6281000000001", "weight": 99.0},
                  {"workspace_id": WS, "phone": "6281000000002", "weight": 1.0}],
        "unknown": [{"workspace_id": WS, "phone": "6289000000001"}],
    }
    doc.update(over)
    p = tmp_path / "workload.json"
    p.write_text(json.dumps(doc))
    return p


def test_workload_weights_drive_the_draws(tmp_path: Path) -> None:
    w = load_file(_workload_file(tmp_path))
    assert w.members == {WS: "u"}
    s = Sampler(w, seed=1)
    hot = sum(s.known().phone == "6281000000001" for _ in range(2000))
    assert 1900 < hot < 2000
    assert s.unknown() is not None


def test_workload_wire_round_trip_and_distinct_slices(tmp_path: Path) -> None:
    w = load_file(_workload_file(tmp_path, known=[{"workspace_id": WS, "phone": f"62810000{i:05d}", "weight": 1}
                                                  for i in range(10)]))
    again = type(w).from_wire(json.loads(json.dumps(w.to_wire())))
    assert again.known == w.known and again.weights == w.weights
    a, b = Sampler(again, distinct=True, slice_index=0, slices=2), Sampler(again, distinct=True, slice_index=1, slices=2)
    seen_a, seen_b = [a.known() for _ in range(5)], [b.known() for _ in range(5)]
    assert len(set(seen_a + seen_b)) == 10 and a.wraps == 0
    a.known()
    assert a.wraps == 1


@pytest.mark.parametrize(
    ("over", "message"),
    [({"format": "x"}, "'format' must be"), ({"known": []}, "'known' is empty"),
     ({"known": [{"workspace_id": "nope", "phone": "1"}]}, "known[0] needs a uuid"),
     ({"known": [{"workspace_id": WS, "phone": "6281000000001", "weight": 0}]}, "'weight' must be a positive")],
)
def test_workload_errors_are_one_line(tmp_path: Path, over: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_file(_workload_file(tmp_path, **over))
    with pytest.raises(WorkloadError, match="not found"):
        load_file(tmp_path / "missing.json")


def test_pin_wins_over_the_file(tmp_path: Path) -> None:
    s = load_settings({"TEST_WORKSPACE_ID": WS, "TEST_PHONE": "6281234567890", "ENV_FILE": "/nonexistent"}, root=tmp_path)
    w = resolve(s, str(tmp_path / "absent.json"))
    assert [k.phone for k in w.known] == ["6281234567890"] and w.unknown[0].phone != "6281234567890"
    assert pinned(WS, "1").source.startswith("TEST_")


# ---------------------------------------------------------------- pacer


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_pacer_on_time_late_and_dropped() -> None:
    c = FakeClock()
    p = Pacer(10, max_late_s=1.0, clock=c, sleep=c.sleep)
    assert [round(p.acquire(), 3) for _ in range(3)] == [0.0, 0.1, 0.2]  # sleeps to each slot
    assert p.counts.late == 0
    c.t += 0.5  # busy executors: the next slot (0.3) starts 0.2 s late... after this call's own wait
    p.acquire()
    assert p.counts.late == 1
    c.t += 5.0  # a stall: slots more than 1 s overdue are dropped, not burst
    intended = p.acquire()
    assert c.t - intended <= 1.0 + 1e-9
    counts = p.drain()
    assert counts.dropped > 30 and counts.scheduled == counts.started + counts.dropped
    assert counts.max_late_ms >= 200
    assert p.counts.scheduled == 0


# ---------------------------------------------------------------- shape and options


def test_parse_steps() -> None:
    assert parse_steps("10,25:5, 50", 30) == [Step(10, 30), Step(25, 5), Step(50, 30)]
    for bad in ("", "x", "0", "5:-1"):
        with pytest.raises(ValueError, match="--step-spec"):
            parse_steps(bad, 30)


def test_options_from_parsed_and_write_safety() -> None:
    ns = SimpleNamespace(targets=["supabase_rest,convex_query", "convex_query"], write_weight=AUTO, allow_writes=False)
    o = HarnessOptions.from_parsed(ns)
    assert o.targets == ("supabase_rest", "convex_query")
    assert o.effective_write_weight(sandbox=True) == 5 and o.effective_write_weight(sandbox=False) == 0
    o2 = HarnessOptions.from_parsed(SimpleNamespace(targets=["convex_http"], write_weight=3, allow_writes=False))
    assert o2.effective_write_weight(False) == 0 and o2.effective_write_weight(True) == 3
    o3 = HarnessOptions.from_parsed(SimpleNamespace(targets=["convex_http"], write_weight=3, allow_writes=True))
    assert o3.effective_write_weight(False) == 3
    with pytest.raises(ValueError, match="unknown target"):
        HarnessOptions.from_parsed(SimpleNamespace(targets=["mysql"]))
    with pytest.raises(ValueError, match="--known-weight"):
        HarnessOptions.from_parsed(SimpleNamespace(targets=["convex_http"], known_weight=-1))


def test_server_timing_is_read_from_one_or_several_header_lines() -> None:
    from harness.phases import parse_server_timing, server_total

    postgrest = "jwt;dur=0.1, parse;dur=0.2, plan;dur=0.3, transaction;dur=1.5, response;dur=0.4"
    assert parse_server_timing(postgrest) == {"jwt": 0.1, "parse": 0.2, "plan": 0.3, "transaction": 1.5, "response": 0.4}
    assert server_total(parse_server_timing(postgrest)) == pytest.approx(2.5)
    # a proxy's own line beside the backend's; repeated names add up; "total" wins over the sum
    lines = ['exec;dur=2.0, cache;desc="miss"', 'edge;dur="1.0", exec;dur=0.5']
    assert parse_server_timing(lines) == {"exec": 2.5, "edge": 1.0}
    assert server_total({"exec": 2.5, "total": 4.0}) == 4.0
    assert parse_server_timing(None) == {} and server_total({}) is None
    assert parse_server_timing("exec;dur=abc, db;desc=x") == {}  # no measurement, nothing guessed


def test_the_lookup_sample_is_bounded_uniform_and_keeps_each_lookups_parts() -> None:
    import random

    from harness.split import SIZE, Reservoir

    r = Reservoir(rng=random.Random(3))
    for i in range(20 * SIZE):
        r.add(float(i), {"connect": 1.0, "server": 2.0} if i % 2 else {"ttfb": 5.0})
    assert r.n == 20 * SIZE and len(r.items) == SIZE
    for total, connect, server in r.items:  # no server timing: None, never a guess
        assert (connect, server) == ((1.0, 2.0) if int(total) % 2 else (0.0, None))
    # every lookup had the same chance: the kept ones' mean is the whole run's, within a few standard errors
    mean = sum(t for t, _, _ in r.items) / SIZE
    assert abs(mean - (20 * SIZE - 1) / 2) < 4 * (20 * SIZE / 12**0.5) / SIZE**0.5


def test_units_do_not_import_locust() -> None:
    # importing locust monkey-patches the whole test process with gevent
    import sys

    assert "locust" not in sys.modules


def test_batched_histograms_count_exactly_as_record_value() -> None:
    """harness.hdr.Histogram folds its pending values with numpy: the counts, total, min and max must be
    hdrh's own, value for value (the edges of buckets and of the range included)."""
    import random

    from harness.hdr import FOLD_IN_PYTHON, Histogram, new_histogram, to_us

    rng = random.Random(7)
    ms = [rng.lognormvariate(1.0, 2.5) for _ in range(20_000)]
    ms += [0.0, 0.0004, 0.0015, 2.047, 2.048, 2.0485, 1023.9995, 3_600_000.0, 4_000_000.0]
    for values in (ms, ms[:FOLD_IN_PYTHON - 1]):  # the vectorised fold, and the plain loop for small batches
        batched, plain = Histogram(), new_histogram()
        for v in values:
            batched.record_ms(v)
            plain.record_value(to_us(v))
        got = batched.hdr
        assert list(got.counts) == list(plain.counts)
        assert (got.total_count, got.min_value, got.max_value) == (plain.total_count, plain.min_value, plain.max_value)
    # values recorded after a fold are folded by the next read
    batched.record_ms(5.0)
    assert batched.total == len(ms[:FOLD_IN_PYTHON - 1]) + 1 and batched.hdr.total_count == batched.total
