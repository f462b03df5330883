"""Headless runs of the user classes against the sandbox (real gateway, PostgreSQL, Convex, Next.js)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.helpers import AI_CONTEXT, STEP_SHAPE, final_counts, read_hdr, run_locust

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def _get(url: str, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _send(method: str, url: str, headers: dict[str, str], body: Any = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={**headers, "Content-Type": "application/json", "Prefer": "return=minimal"})
    with urllib.request.urlopen(req, timeout=10):
        pass


def _rest(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    key = env["SUPABASE_SERVICE_ROLE_KEY"]
    return env["SUPABASE_URL"].rstrip("/") + "/rest/v1", {"apikey": key, "Authorization": f"Bearer {key}"}


TARGETS = ("supabase_rest", "supabase_nested", "supabase_rpc", "convex_http", "convex_query",
           "api_supabase", "api_convex")
# Live verdict exit codes (reports.rules.EXIT_CODES): these runs are too short, or measure too few
# targets, for anything but INCONCLUSIVE, so any other code is a wrong verdict.
INCONCLUSIVE = 11
# More successful lookups than any of these runs can make: the verdict cannot depend on the machine's speed.
UNREACHABLE_SAMPLES = "1000000"


@pytest.fixture
def stack(seeded_sandbox: dict[str, Any], app_env: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """(env, workload): the seeded sandbox with the Next.js app, and the seeded workspace's workload."""
    return dict(app_env), json.loads(Path(seeded_sandbox["workload"]).read_text())


def test_lookups_against_the_seeded_sandbox(stack: tuple[dict[str, str], dict[str, Any]], tmp_path: Path) -> None:
    """Every target, the API routes included, against the real stack."""
    env, workload = stack
    (tmp_path / "workload.json").write_text(json.dumps(workload))
    targets = TARGETS
    prefix = tmp_path / "run"
    p = run_locust(
        ["-f", AI_CONTEXT, "--headless", "-u", str(2 * len(targets)), "-r", "50", "-t", "6s", "--csv", str(prefix),
         "--json-file", str(tmp_path / "final"), "--warmup", "0", "--targets", *targets, "--write-weight", "0",
         "--min-samples", UNREACHABLE_SAMPLES],
        env, tmp_path, timeout=90,
    )
    assert p.returncode == INCONCLUSIVE, p.stderr[-3000:]
    counts = final_counts(tmp_path / "final.json")
    failed = {k: v for k, v in counts.items() if v[1]}
    assert not failed, (failed, p.stderr[-2000:])
    hdr = read_hdr(prefix)
    assert hdr["metadata"]["sandbox"] is True
    entries = {(e["type"], e["name"]): e for e in hdr["entries"] if e["step"] is None}
    for t in targets:
        assert counts[("lookup", t)][0] > 0, t
        trips = entries[("lookup", t)]["round_trips"]
        if t == "supabase_rest":
            # contact, conversations, messages in.(…), notes; no messages call when there is no conversation
            assert "4" in trips and set(trips) <= {"3", "4"}, trips
        else:
            assert trips == {"1": counts[("lookup", t)][0]}, (t, trips)
        if ("lookup-miss", t) in entries:
            assert entries[("lookup-miss", t)]["round_trips"] == {"1": counts[("lookup-miss", t)][0]}
    assert counts[("GET", "supabase_rest contacts")][0] > 0
    assert counts[("GET", "supabase_rest messages")][0] > 0
    assert counts[("POST", "supabase_rpc rpc/get_contact_context")][0] > 0
    assert counts[("POST", "convex_query contacts:getContextByPhone")][0] > 0
    assert counts[("GET", "convex_http /contacts/by-phone")][0] > 0
    assert counts[("GET", "api_supabase /api/contacts/by-phone")][0] > 0
    assert counts[("GET", "api_convex /api/contacts/by-phone-convex")][0] > 0
    # the database's side of the window (DATABASE_URL is the sandbox's, pg_stat_statements preloaded)
    db = hdr["metadata"]["database"]
    assert db["status"] == "ok", db
    assert db["per_target"]["supabase_rest"]["statements"] == ["contact_notes", "contacts", "conversations", "messages"]
    for t in ("supabase_rest", "supabase_nested", "supabase_rpc"):
        per = db["per_target"][t]
        assert per["ms_per_found_lookup"] > 0 and per["lookups"] >= counts[("lookup", t)][0], (t, per)
    assert db["activity"] and "authenticator" in db["activity"][0]["by_role"], db["activity"][:1]
    text = json.dumps(hdr)
    assert env["DATABASE_URL"].split("@")[0] not in text  # the credentials part never
    for key in ("SUPABASE_SERVICE_ROLE_KEY", "CRM_API_KEY", "CONVEX_ADMIN_KEY"):
        if env.get(key):
            assert env[key] not in text


def test_each_step_gets_its_database_window(stack: tuple[dict[str, str], dict[str, Any]], tmp_path: Path) -> None:
    """A step run: pg_stat_statements read at each step change, so each step has its own statements."""
    env, workload = stack
    (tmp_path / "workload.json").write_text(json.dumps(workload))
    prefix = tmp_path / "run"
    p = run_locust(
        ["-f", STEP_SHAPE, "--headless", "-t", "20s", "--csv", str(prefix), "--warmup", "0",
         "--targets", "supabase_rest", "--step-spec", "1:3,2:3", "--think-time", "0.02", "--write-weight", "0"],
        env, tmp_path, timeout=90,
    )
    assert p.returncode == INCONCLUSIVE, p.stderr[-3000:]
    hdr = read_hdr(prefix)
    db = hdr["metadata"]["database"]
    assert db["status"] == "ok", db
    lookups = {e["step"]: e["count"] for e in hdr["entries"] if (e["type"], e["name"]) == ("lookup", "supabase_rest")}
    assert [s["index"] for s in db["steps"]] == [0, 1]
    for step in db["steps"]:
        contacts = [r for r in step["statements"] if (r["target"], r["call"]) == ("supabase_rest", "contacts")]
        # a step's window holds its own lookups' statements (give or take those in flight at its edges)
        assert contacts and sum(r["calls"] for r in contacts) >= lookups[step["index"]] - 2, (step["index"], contacts)
    total = sum(r["calls"] for r in db["statements"] if (r["target"], r["call"]) == ("supabase_rest", "contacts"))
    per_step = sum(r["calls"] for s in db["steps"] for r in s["statements"]
                   if (r["target"], r["call"]) == ("supabase_rest", "contacts"))
    assert per_step == total  # the steps split the window, nothing counted twice or lost


def test_write_path_against_the_sandbox_is_marked_and_undone(
    stack: tuple[dict[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    env, wl = stack
    base, h = _rest(env)
    wl["known"] = wl["known"][:1]
    ws, phone = wl["known"][0]["workspace_id"], wl["known"][0]["phone"]
    contact = _get(f"{base}/contacts?select=id&workspace_id=eq.{ws}&phone=eq.{phone}", h)[0]
    before = _get(f"{base}/conversations?select=id,last_message_at,last_message_preview&contact_id=eq.{contact['id']}", h)
    (tmp_path / "workload.json").write_text(json.dumps(wl))
    try:
        p = run_locust(
            ["-f", AI_CONTEXT, "--headless", "-u", "1", "-r", "1", "-t", "2s", "--json-file", str(tmp_path / "final"),
             "--warmup", "0", "--targets", "supabase_rest", "--known-weight", "0", "--unknown-weight", "0",
             "--write-weight", "1", "--think-time", "0.05"],
            env, tmp_path, timeout=60,
        )
        counts = final_counts(tmp_path / "final.json")
        written = _get(f"{base}/messages?select=id,direction,sender_type&message_type=eq.loadtest", h)
    finally:
        # leave Supabase as the seed made it (Convex parity checks run on the same sandbox)
        _send("DELETE", f"{base}/messages?message_type=eq.loadtest", h)
        for c in before:
            _send("PATCH", f"{base}/conversations?id=eq.{c['id']}", h,
                  {"last_message_at": c["last_message_at"], "last_message_preview": c["last_message_preview"]})
    assert p.returncode == INCONCLUSIVE, p.stderr[-2000:]  # writes only: no lookup measured
    n, failures = counts[("write", "supabase_rest")]
    assert n > 0 and failures == 0
    assert before, "the workload's first contact has no conversation to write into"
    # Locust stops users mid-task: the last write may have inserted its message and been stopped before
    # its conversation update, so its transaction row is missing while its insert is counted.
    inserts, insert_failures = counts[("POST", "supabase_rest messages insert")]
    assert n <= inserts <= n + 1 and insert_failures == 0
    assert len(written) >= n and all(m["direction"] == "outbound" and m["sender_type"] == "ai" for m in written)


def test_pinned_contact_gets_a_member_token_on_the_sandbox(
    stack: tuple[dict[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    """TEST_WORKSPACE_ID + TEST_PHONE carry no member: the harness asks the sandbox for one, so convex_query succeeds."""
    env, workload = stack
    key = workload["known"][0]
    pin = {**env, "TEST_WORKSPACE_ID": key["workspace_id"], "TEST_PHONE": key["phone"]}
    p = run_locust(
        ["-f", AI_CONTEXT, "--headless", "-u", "2", "-r", "10", "-t", "4s", "--json-file", str(tmp_path / "final"),
         "--warmup", "0", "--targets", "convex_query", "--write-weight", "0", "--unknown-weight", "0"],
        pin, tmp_path, timeout=60,
    )
    assert p.returncode == INCONCLUSIVE, p.stderr[-3000:]  # no baseline measured
    assert "no member token" not in p.stderr
    requests, failures = final_counts(tmp_path / "final.json")[("lookup", "convex_query")]
    assert requests > 0 and failures == 0, p.stderr[-2000:]


def test_data_that_differs_between_the_backends_stops_the_run(seeded_sandbox: dict[str, Any], tmp_path: Path) -> None:
    """One more contact on Supabase than on Convex: exit 2 before any user, or, allowed, an INCONCLUSIVE run."""
    import subprocess
    import sys
    import uuid

    seeded = seeded_sandbox
    env, workload = dict(seeded["env"]), json.loads(Path(seeded["workload"]).read_text())
    (tmp_path / "workload.json").write_text(json.dumps(workload))
    base, h = _rest(env)
    extra = str(uuid.uuid4())
    _send("POST", f"{base}/contacts", h, {"id": extra, "workspace_id": seeded["workspace_id"], "phone": "6281000000001",
                                          "tags": [], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
    try:
        args = ["-f", AI_CONTEXT, "--headless", "-u", "2", "-r", "10", "-t", "4s", "--warmup", "0",
                "--targets", "supabase_rest", "convex_http", "--write-weight", "0", "--csv", str(tmp_path / "run")]
        p = run_locust(args, env, tmp_path, timeout=90)
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert p.returncode == 2 and len(errors) == 1, p.stderr[-2000:]
        assert errors[0].startswith("error: data differs between Supabase and Convex (counts: contacts ")
        assert "run `python -m seed migrate --clear --restart`" in errors[0] and "--allow-data-mismatch" in errors[0]

        p = run_locust([*args, "--allow-data-mismatch"], env, tmp_path, timeout=90)
        assert p.returncode == 11, p.stderr[-2000:]  # the live verdict: INCONCLUSIVE, whatever the numbers
        parity = read_hdr(tmp_path / "run")["metadata"]["data_parity"]
        assert parity["status"] == "mismatch" and parity["allowed"] is True
        assert parity["tables"]["contacts"]["supabase"] == parity["tables"]["contacts"]["convex"] + 1
        out = tmp_path / "report"
        rep = subprocess.run([sys.executable, "-m", "reports", "decide", str(tmp_path / "run"), "--out", str(out),
                              "--no-charts", "--strict"], capture_output=True, text=True, timeout=120)
        assert rep.returncode == 3, rep.stderr
        decision = json.loads((out / "decision.json").read_text())
        assert decision["verdict"] == "INCONCLUSIVE"
        assert decision["decisions"]["direct"]["run_problems"][0].startswith("data differs between Supabase and Convex")
        assert "**DATA DIFFERS:**" in (out / "decision.md").read_text()
    finally:
        _send("DELETE", f"{base}/contacts?id=eq.{extra}", h)

    # the same data again: the check passes and says so in the artifact
    p = run_locust([*args, "--min-samples", UNREACHABLE_SAMPLES], env, tmp_path, timeout=90)
    assert p.returncode == INCONCLUSIVE, p.stderr[-2000:]
    meta = read_hdr(tmp_path / "run")["metadata"]
    assert meta["data_parity"]["status"] == "ok" and meta["data_parity"]["method"] == "counts"
    assert meta["preflight"]["status"] == "ok"
