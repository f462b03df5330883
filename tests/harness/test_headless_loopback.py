"""Headless runs of every user class against the loopback fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from tests.harness.fake_backend import WORKSPACE, FakeBackend
from tests.harness.helpers import AI_CONTEXT, final_counts, read_hdr, read_stats, run_locust

TARGETS = ["supabase_rest", "supabase_nested", "supabase_rpc", "convex_http", "convex_query", "api_supabase", "api_convex"]
ROUND_TRIPS = {"supabase_rest": 4, "supabase_nested": 1, "supabase_rpc": 1, "convex_http": 1, "convex_query": 1,
               "api_supabase": 1, "api_convex": 1}


@pytest.mark.slow
def test_every_target_headless(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        prefix = tmp_path / "run"
        p = run_locust(
            ["-f", AI_CONTEXT, "--headless", "-u", "14", "-r", "14", "-t", "4s", "--csv", str(prefix),
             "--json-file", str(tmp_path / "final"), "--warmup", "0", "--targets", *TARGETS,
             "--write-weight", "5", "--think-time", "0.01"],
            fb.env(), tmp_path,
        )
    assert p.returncode == 11, p.stderr[-3000:]  # INCONCLUSIVE: far fewer than 1000 samples
    counts = final_counts(tmp_path / "final.json")
    stats = read_stats(prefix)
    hdr = read_hdr(prefix)
    entries = {(e["type"], e["name"]): e for e in hdr["entries"] if e["step"] is None}
    for t in TARGETS:
        n, fails = counts[("lookup", t)]
        assert n > 0 and fails == 0, (t, n, fails)
        assert ("lookup", t) in stats
        miss = counts.get(("lookup-miss", t))
        assert miss is not None and miss[1] == 0, t
        e = entries[("lookup", t)]
        assert e["count"] == n and e["failures"] == 0
        assert HdrHistogram.decode(e["hdr"].encode()).get_total_count() == n
        assert e["round_trips"] == {str(ROUND_TRIPS[t]): n}
        assert entries[("lookup-miss", t)]["round_trips"] == {"1": miss[0]}
        assert hdr["metadata"]["targets"][t]["round_trips"] == ROUND_TRIPS[t]
    # per-call rows under the documented names
    assert counts[("GET", "supabase_rest contacts")][1] == 0
    assert counts[("GET", "supabase_rest messages")][0] > 0
    assert counts[("POST", "convex_query contacts:getContextByPhone")][1] == 0
    assert counts[("GET", "convex_http /contacts/by-phone")][1] == 0
    # the write path ran (sandbox: loopback) with zero failures
    assert any(k[0] == "write" and v[0] > 0 for k, v in counts.items())
    assert all(v[1] == 0 for k, v in counts.items()), {k: v for k, v in counts.items() if v[1]}
    text = json.dumps(hdr)
    assert "test-crm-key" not in text and "test-service-role" not in text and "member-token" not in text
    assert hdr["metadata"]["sandbox"] is True


def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        env = fb.env()
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "1", "-t", "2s", "--targets", "convex_http"], env, tmp_path)
        assert p.returncode == 2
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert errors == [errors[0]] and "workload file not found" in errors[0] and "Traceback" not in p.stderr
        env.pop("APP_URL")
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "1", "-t", "2s", "--targets", "api_convex"], env, tmp_path)
        assert p.returncode == 2 and "error: api_convex: APP_URL is not set" in p.stderr
        assert "test-crm-key" not in p.stderr
    # the backend is gone: nothing listens on its port any more, and no user starts
    p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "1", "-t", "30s", "--targets", "convex_http"], env, tmp_path)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "Traceback" not in p.stderr
    assert "convex_http: cannot connect to" in errors[0] and "(CONVEX_SITE_URL)" in errors[0]


def test_convex_error_status_counts_as_failure(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        env = fb.env()
        env["CONVEX_AUTH_TOKEN"] = "wrong"  # the fake answers HTTP 200 {"status": "error"}
        p = run_locust(
            ["-f", AI_CONTEXT, "--headless", "-u", "2", "-r", "2", "-t", "2s", "--targets", "convex_query",
             "--json-file", str(tmp_path / "final"), "--warmup", "0", "--think-time", "0.05", "--skip-preflight"],
            env, tmp_path,
        )
    counts = final_counts(tmp_path / "final.json")
    n, failures = counts[("POST", "convex_query contacts:getContextByPhone")]
    assert n > 0 and failures == n
    assert counts[("lookup", "convex_query")][1] == counts[("lookup", "convex_query")][0]
    assert p.returncode == 11


def test_refused_calls_are_one_failure_each_with_their_status(tmp_path: Path) -> None:
    """Every call the backend answers 401 is one failed call row (no retry), with its HTTP status in the
    artifact and the backend's message in Locust's failures, and fails its lookup."""
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        prefix = tmp_path / "run"
        p = run_locust(
            ["-f", AI_CONTEXT, "--headless", "-u", "2", "-r", "2", "-t", "2s", "--targets", "convex_http",
             "--csv", str(prefix), "--json-file", str(tmp_path / "final"), "--warmup", "0", "--think-time", "0.05",
             "--unknown-weight", "0", "--write-weight", "0", "--skip-preflight"],
            {**fb.env(), "CRM_API_KEY": "wrong-key"}, tmp_path,
        )
        seen = fb.counts["401"]
    assert p.returncode == 11, p.stderr[-2000:]
    counts = final_counts(tmp_path / "final.json")
    n, failures = counts[("GET", "convex_http /contacts/by-phone")]
    assert n > 0 and failures == n
    assert n <= seen <= n + 2  # one request per call, no retry (each user may be stopped with one in flight)
    assert counts[("lookup", "convex_http")] == (n, n)
    entries = {(e["type"], e["name"]): e for e in read_hdr(prefix)["entries"] if e["step"] is None}
    call = entries[("GET", "convex_http /contacts/by-phone")]
    assert (call["count"], call["failures"], call["statuses"]) == (0, n, {"401": n})
    assert entries[("lookup", "convex_http")]["failures"] == n
    failed = (tmp_path / "run_failures.csv").read_text()
    assert "HTTP 401: unauthorized" in failed and "wrong-key" not in failed


def _one_error(p: object) -> str:
    stderr = p.stderr  # type: ignore[attr-defined]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]  # type: ignore[attr-defined]
    return errors[0]


@pytest.mark.parametrize(
    ("setting", "value", "target", "expected"),
    [
        ("CRM_API_KEY", "wrong-key", "convex_http",
         "convex_http: the lookup's /contacts/by-phone request failed (HTTP 401: unauthorized): check CRM_API_KEY"),
        ("CONVEX_AUTH_TOKEN", "wrong-token", "convex_query",
         "convex_query: the lookup's contacts:getContextByPhone request failed (convex error: Unauthenticated): "
         "check CONVEX_AUTH_TOKEN"),
        ("SUPABASE_SERVICE_ROLE_KEY", "wrong-service", "supabase_rest",
         "supabase_rest: the lookup's contacts request failed (HTTP 401: Invalid API key): "
         "check SUPABASE_SERVICE_ROLE_KEY"),
        ("CRM_API_KEY", "wrong-key", "api_supabase",
         "api_supabase: the lookup's /api/contacts/by-phone request failed (HTTP 401: unauthorized): check CRM_API_KEY"),
    ],
)
def test_preflight_names_the_target_and_the_setting_before_any_user_starts(
    tmp_path: Path, setting: str, value: str, target: str, expected: str
) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        env = {**fb.env(), setting: value}
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "2", "-t", "30s", "--targets", target,
                        "--csv", str(tmp_path / "run")], env, tmp_path)
        assert fb.requests_seen() <= 4  # the preflight's requests only: no user ever started
    line = _one_error(p)
    assert line.startswith("error: " + expected), line
    assert value not in line
    assert not (tmp_path / "run_hdr.json").exists()  # no run, so no artifact


def test_preflight_refuses_a_pinned_contact_that_does_not_exist(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        env = {**fb.env(), "TEST_WORKSPACE_ID": WORKSPACE, "TEST_PHONE": "6281999999999"}
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "2", "-t", "30s", "--targets", "supabase_rpc",
                        "convex_http"], env, tmp_path)
    line = _one_error(p)
    assert line == (f"error: supabase_rpc: the pinned contact 6281999999999 of workspace {WORKSPACE} "
                    "(TEST_WORKSPACE_ID + TEST_PHONE) does not exist on this backend; "
                    f"convex_http: the pinned contact 6281999999999 of workspace {WORKSPACE} "
                    "(TEST_WORKSPACE_ID + TEST_PHONE) does not exist on this backend")


def test_preflight_checks_the_write_path_without_writing(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        fb.data.read_only = True
        # the write task is on (sandbox, --write-weight 5): the dry write is refused, and the run never starts
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "2", "-t", "30s", "--targets", "supabase_nested",
                        "--write-weight", "5"], fb.env(), tmp_path)
        line = _one_error(p)
        assert line.startswith("error: supabase_nested: the write path's conversations update request failed "
                               "(HTTP 403: permission denied for table conversations)"), line
        # write task off: the write permission is not asked for
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "1", "-t", "1s", "--targets", "supabase_nested",
                        "convex_http", "--write-weight", "0", "--warmup", "0"], fb.env(), tmp_path)
        assert p.returncode == 11, p.stderr[-2000:]
        fb.data.read_only = False
        # a dry write of each kind passes and writes nothing: Supabase updates no row, Convex gets an unknown phone
        before = fb.requests_seen()
        p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "0", "-t", "1s", "--targets", "supabase_nested",
                        "convex_http", "--write-weight", "5"], fb.env(), tmp_path)
        assert p.returncode in (0, 10, 11), p.stderr[-2000:]
        assert fb.data.writes == 0 and fb.requests_seen() > before
