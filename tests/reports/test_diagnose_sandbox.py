"""``reports diagnose`` and ``pg_stat_statements`` on the sandbox: real PostgreSQL, the real gateway.

Planted truth: a per-row ``auth.uid()`` policy on a lookup table and a dropped hot
index are named on the right tables with fixes that, applied, make both go away;
the shipped schema raises neither. Every schema change is undone in one
transaction in ``finally`` (other tests share the sandbox).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from harness.paths import Paths
from harness.preflight import drive
from harness.settings import NAMES
from harness.targets import Endpoints
from harness.workload import Key
from reports.__main__ import main
from reports.diagnose import pgstat
from sandbox.tokens import mint_jwt
from tests.sandbox.conftest import PHONE, Crm, _build

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
LOOKUP = ["supabase_rest contacts", "supabase_rest conversations", "supabase_rest messages",
          "supabase_rest contact_notes", "supabase_nested contacts nested", "supabase_rpc rpc/get_contact_context",
          "supabase_rpc rpc/get_contact_context (function body)"]
SCHEMA_CODES = {"seq_scan_hot_path", "missing_hot_index", "sort_without_index", "rls_per_row_auth_call", "unindexed_fk"}
HOT_INDEX = "messages_conversation_id_created_at_idx"
NOTES_POLICY = "members read notes"
MISSING = "6280000000017"
PER_ROW_NOTES = ("auth.uid() in (select wm.user_id from public.workspace_members wm "
                 "where wm.workspace_id = contact_notes.workspace_id)")


@pytest.fixture(scope="module")
def crm(sandbox_env: dict[str, str]) -> Iterator[Crm]:
    """tests/sandbox's small data set, for this module only: gone before other modules count its rows."""
    data = Crm(sandbox_env["DATABASE_URL"])
    with psycopg.connect(data.database_url, autocommit=True) as conn, conn.transaction():
        _build(conn, data)
    try:
        yield data
    finally:
        with psycopg.connect(data.database_url, autocommit=True) as conn:
            conn.execute("delete from workspaces where id = any(%s)", (list(data.workspaces.values()),))


@pytest.fixture(scope="module")
def workload(crm: Crm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = crm.workspaces["a"]
    path = tmp_path_factory.mktemp("diagnose") / "workload.json"
    path.write_text(json.dumps({
        "format": "crm-workload/1",
        "workspaces": [{"id": ws, "name": "Eagle Overseas", "member_user_id": crm.members["a"]}],
        # the main contact, one with no conversation, and a phone nobody has (its plans would be a miss's)
        "known": [{"workspace_id": ws, "phone": PHONE, "weight": 3}, {"workspace_id": ws, "phone": "6289999000001"},
                  {"workspace_id": ws, "phone": MISSING}],
        "unknown": [],
    }))
    return path


def diagnose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
             env: dict[str, str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """In-process ``python -m reports diagnose`` with exactly ``env`` as settings."""
    for name in (*NAMES, "ENV_FILE", "SANDBOX_DIR", "NEXT_PUBLIC_SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_ANON_KEY"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}"
    rc = main(["diagnose", "--out", str(out), *args])
    captured = capsys.readouterr()
    doc = json.loads((out / "diagnosis.json").read_text()) if (out / "diagnosis.json").exists() else None
    return rc, doc, captured.out + captured.err


def settings_env(sandbox_env: dict[str, str], database: bool = True) -> dict[str, str]:
    keep = ["SUPABASE_URL", "SUPABASE_ANON_KEY", "SANDBOX_DIR"] + (["DATABASE_URL"] if database else [])
    return {k: sandbox_env[k] for k in keep if sandbox_env.get(k)}


def schema_findings(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["code"], f["table"]) for f in doc["findings"] if f["code"] in SCHEMA_CODES}


def test_shipped_schema_raises_none(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path, sandbox_env: dict[str, str], workload: Path) -> None:
    rc, doc, out = diagnose(monkeypatch, capsys, tmp_path, settings_env(sandbox_env), "--workload", str(workload))
    assert rc == 0, out
    assert doc is not None
    assert [s["name"] for s in doc["statements"]] == LOOKUP
    assert schema_findings(doc) == set()
    assert doc["sandbox"] is True and doc["samples"]["phones"] == 3
    assert {s["samples"] for s in doc["statements"] if s["name"] != "supabase_rest messages"} == {2}
    for target in ("supabase_rest", "supabase_nested", "supabase_rpc"):
        assert any(MISSING in line and "not found as the member" in line for line in doc["failures"][target])
    for s in doc["statements"]:
        assert s["execution_ms"]["median"] is not None and s["execution_ms"]["median"] > 0
        assert s["via"] in ("postgrest", "database_url")
        assert s["plan"][0]["Plan"]["Node Type"]
    body = next(s for s in doc["statements"] if s["name"].endswith("(function body)"))
    assert body["via"] == "database_url" and {x["table"] for x in body["scans"]} >= {"contacts", "messages"}
    # the text table names every statement and says there is nothing to fix
    assert "findings: none" in out and "supabase_nested contacts nested" in out
    password = urlsplit(sandbox_env["DATABASE_URL"]).password or "-"
    assert password not in out + json.dumps(doc) and sandbox_env["SUPABASE_ANON_KEY"] not in json.dumps(doc)


def test_statements_written_here_answer_like_the_gateway(crm: Crm, sandbox_env: dict[str, str]) -> None:
    """Explained through DATABASE_URL, a statement must be the request's: same answer as the gateway's."""
    from reports.diagnose import catalog, sampling

    ws = crm.workspaces["a"]
    token = mint_jwt(sub=crm.members["a"], alg="ES256", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    paths = Paths(Endpoints(supabase_url=sandbox_env["SUPABASE_URL"], supabase_key=sandbox_env["SUPABASE_ANON_KEY"]),
                  {ws: token})
    identity = sampling.Identity(token, sampling.claims_of(token))
    with pgstat.connect(sandbox_env["DATABASE_URL"]) as conn, httpx.Client(timeout=20) as http:
        db = catalog.load(conn)
        planner = sampling.DatabasePlanner(conn, db.pgrst)
        compared = []
        for target in sampling.LOOKUP_TARGETS:
            path = paths.lookup(target, Key(ws, PHONE))
            call = next(path)
            while True:
                resp = http.request(call.request.method, call.request.url, headers=dict(call.request.headers),
                                    content=call.request.body)
                assert resp.status_code == 200, resp.text
                answer, plan, sql = planner.run(call, identity)
                assert answer == resp.json(), call.request.what
                assert sql and sql.startswith("WITH pgrst_source AS (")
                assert plan[0]["Plan"]["Node Type"] == "Aggregate"  # PostgREST's json_agg on top
                compared.append(call.request.what)
                try:
                    call = path.send(answer)
                except StopIteration:
                    break
    assert compared == ["contacts", "conversations", "messages", "contact_notes", "contacts nested",
                        "rpc/get_contact_context"]


def test_both_ways_see_the_same_plans(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, sandbox_env: dict[str, str], workload: Path) -> None:
    """The statements written for DATABASE_URL plan like the ones the gateway runs: same scans, same indexes."""
    env = settings_env(sandbox_env)
    rc, by_gateway, out = diagnose(monkeypatch, capsys, tmp_path, env, "--workload", str(workload), "--via", "postgrest")
    if rc == 2 and "plans are not enabled" in out:
        pytest.skip("this sandbox's gateway does not serve plans")
    rc2, by_database, _ = diagnose(monkeypatch, capsys, tmp_path, env, "--workload", str(workload), "--via", "database")
    assert rc == rc2 == 0 and by_gateway and by_database

    def shapes(doc: dict[str, Any]) -> dict[str, set[tuple[str, str, str | None]]]:
        return {s["name"]: {(x["node"], x["table"], x["index"]) for x in s["scans"]} for s in doc["statements"]}

    gateway, database = shapes(by_gateway), shapes(by_database)
    assert gateway.keys() == database.keys()
    for name in gateway:
        assert gateway[name] == database[name], name
    assert {s["via"] for s in by_gateway["statements"] if "function body" not in s["name"]} == {"postgrest"}
    assert {s["via"] for s in by_database["statements"]} == {"database_url"}


def _shipped(conn: psycopg.Connection) -> tuple[str, str]:
    conn.execute("select set_config('search_path', '', false)")
    index = conn.execute("select indexdef from pg_indexes where schemaname = 'public' and indexname = %s",
                         (HOT_INDEX,)).fetchone()
    policy = conn.execute("select qual from pg_policies where schemaname = 'public' and tablename = 'contact_notes' "
                          "and policyname = %s", (NOTES_POLICY,)).fetchone()
    assert index and policy, "the sandbox does not hold the shipped schema"
    return str(index[0]), str(policy[0])


@pytest.fixture
def planted(sandbox_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The shipped schema with a per-row policy on contact_notes and no hot index on messages."""
    with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
        index_def, policy_qual = _shipped(conn)
        try:
            with conn.transaction():
                conn.execute(f"drop index public.{HOT_INDEX}")
                conn.execute(f'alter policy "{NOTES_POLICY}" on public.contact_notes using ({PER_ROW_NOTES})')
            yield index_def, policy_qual
        finally:
            with conn.transaction():  # back to the shipped schema, whatever the test did in between
                conn.execute("select set_config('search_path', '', false)")
                for (name,) in conn.execute(
                        "select indexname from pg_indexes where schemaname = 'public' and tablename = 'messages' "
                        "and indexdef like %s", ("%(conversation_id, created_at DESC)%",)).fetchall():
                    conn.execute(f'drop index public."{name}"')
                conn.execute(index_def)
                conn.execute(f'alter policy "{NOTES_POLICY}" on public.contact_notes using ({policy_qual})')


def test_planted_policy_and_dropped_index_are_named_and_their_fixes_work(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        sandbox_env: dict[str, str], workload: Path, planted: tuple[str, str]) -> None:
    env = settings_env(sandbox_env)
    rc, doc, out = diagnose(monkeypatch, capsys, tmp_path, env, "--workload", str(workload))
    assert rc == 0 and doc is not None, out
    found = {(f["code"], f["table"]): f for f in doc["findings"]}
    assert ("missing_hot_index", "messages") in found and ("rls_per_row_auth_call", "contact_notes") in found
    assert {t for _, t in schema_findings(doc)} <= {"messages", "contact_notes"}
    index_fix = found[("missing_hot_index", "messages")]["fix"]
    assert index_fix == ("create index concurrently if not exists messages_conversation_id_created_at_idx "
                         "on public.messages (conversation_id, created_at desc);")
    rls = found[("rls_per_row_auth_call", "contact_notes")]
    assert rls["fix"].startswith(f'alter policy "{NOTES_POLICY}" on public.contact_notes using (((select auth.uid()) IN')
    assert "for every row read" in rls["detail"]  # confirmed in the plan, not only read from pg_policies
    assert rls["evidence"]["per_row_evaluations_median"] >= 1
    assert "missing_hot_index" in out and "rls_per_row_auth_call" in out
    # the fixes, as printed, put things right
    with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(index_fix)
        conn.execute(rls["fix"])
    rc, doc, out = diagnose(monkeypatch, capsys, tmp_path, env, "--workload", str(workload))
    assert rc == 0 and doc is not None
    assert schema_findings(doc) == set(), out


@contextlib.contextmanager
def standalone_gateway(sandbox_env: dict[str, str]) -> Iterator[str]:
    """``python -m sandbox rest`` on a free port, as PostgREST is by default: plans off."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    keys = Path(sandbox_env["SANDBOX_DIR"]) / "keys"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "rest", "--port", str(port),
         "--jwt-secret", (keys / "jwt_secret").read_text().strip(), "--jwks-file", str(keys / "jwks.json")],
        cwd=ROOT, env={**os.environ, "PGRST_DB_URI": sandbox_env["DATABASE_URL"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the standalone gateway did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_plans_off_and_no_database_url_is_one_line(tmp_path: Path, sandbox_env: dict[str, str], workload: Path) -> None:
    """A PostgREST without db-plan-enabled (the default) answers the plan media type 406 PGRST107."""
    with standalone_gateway(sandbox_env) as base:
        env = {"SUPABASE_URL": base, "SUPABASE_ANON_KEY": sandbox_env["SUPABASE_ANON_KEY"],
               "SANDBOX_DIR": sandbox_env["SANDBOX_DIR"], "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "reports", "diagnose", "--workload", str(workload),
                               "--out", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line == (f"reports: error: plans are not enabled on {base} (406 PGRST107) and DATABASE_URL is not "
                    "set: enable them (alter role authenticator set pgrst.db_plan_enabled to 'true'; "
                    "notify pgrst, 'reload config') or set DATABASE_URL")
    assert not (tmp_path / "out" / "diagnosis.json").exists()


def test_round_trips_from_a_real_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path, sandbox_env: dict[str, str], workload: Path) -> None:
    from tests.harness.helpers import AI_CONTEXT, run_locust

    env = {k: sandbox_env[k] for k in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SANDBOX_DIR")}
    prefix = tmp_path / "run"
    p = run_locust(["-f", AI_CONTEXT, "--headless", "-u", "2", "-r", "10", "-t", "5s", "--csv", str(prefix),
                    "--warmup", "0", "--targets", "supabase_rest", "supabase_nested", "--workload", str(workload),
                    "--write-weight", "0", "--unknown-weight", "0"], env, tmp_path, timeout=90)
    assert p.returncode in (0, 10, 11), p.stderr[-3000:]
    artifact = json.loads(Path(f"{prefix}_hdr.json").read_text())
    timed = all("server" in (e.get("phases") or {}) for e in artifact["entries"]
                if e["step"] is None and e["name"].startswith("supabase_rest "))
    rc, doc, out = diagnose(monkeypatch, capsys, tmp_path, settings_env(sandbox_env),
                            "--workload", str(workload), "--run", str(prefix), "--samples", "1")
    assert rc == 0 and doc is not None, out
    (f,) = [f for f in doc["findings"] if f["code"] == "round_trips"]
    assert f["evidence"]["requests"] == 4
    assert f["evidence"]["basis"] == ("non-server" if timed else "client")
    assert set(f["evidence"]["calls"]) == {f"supabase_rest {w}" for w in
                                           ("contacts", "conversations", "messages", "contact_notes")}
    assert 0 < f["evidence"]["cost_ms_p50"] < f["evidence"]["lookup_p50_ms"]
    assert "supabase_nested P50" in f["detail"] and "round_trips" in out
    assert doc["run"] == str(prefix) and "no --run" not in " ".join(doc["checks_skipped"])


# ------------------------------------------------------------------------------ pg_stat_statements


def _other_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def scratch_db(sandbox_env: dict[str, str]) -> Iterator[str]:
    """A fresh database on the sandbox's server (no pg_stat_statements in it)."""
    name = f"diag_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"create database {name}")
    try:
        yield _other_db(sandbox_env["DATABASE_URL"], name)
    finally:
        with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


def _preloaded(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return "pg_stat_statements" in str(conn.execute("show shared_preload_libraries").fetchone()[0])


def test_missing_extension_is_one_line_saying_how_to_enable_it(scratch_db: str) -> None:
    with pytest.raises(pgstat.StatsUnavailable) as err:
        pgstat.snapshot(scratch_db)
    assert str(err.value) == (
        "pg_stat_statements is not installed in this database: add pg_stat_statements to shared_preload_libraries "
        "(a restart), then run `create extension pg_stat_statements with schema extensions`")


def test_missing_privilege_is_one_line(scratch_db: str) -> None:
    role, password = f"diag_reader_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("create schema extensions")
        conn.execute("create extension pg_stat_statements with schema extensions")
        conn.execute(f"create role {role} login password '{password}'")
    try:
        parts = urlsplit(scratch_db)
        as_reader = urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))
        with pytest.raises(pgstat.StatsUnavailable) as err:
            pgstat.snapshot(as_reader)
        assert str(err.value) == (
            "the DATABASE_URL role lacks pg_read_all_stats: other roles' statements show as '<insufficient privilege>'; "
            "`grant pg_read_all_stats to <the DATABASE_URL role>`")
        assert password not in str(err.value)
        if not _preloaded(scratch_db):
            with pytest.raises(pgstat.StatsUnavailable, match="installed but not loaded: add pg_stat_statements"):
                pgstat.snapshot(scratch_db)
    finally:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_delta_names_every_statement_the_lookups_ran(crm: Crm, sandbox_env: dict[str, str]) -> None:
    url = sandbox_env["DATABASE_URL"]
    if not _preloaded(url):
        pytest.skip("this sandbox's PostgreSQL does not preload pg_stat_statements")
    ws = crm.workspaces["a"]
    token = mint_jwt(sub=crm.members["a"], alg="ES256", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    paths = Paths(Endpoints(supabase_url=sandbox_env["SUPABASE_URL"], supabase_key=sandbox_env["SUPABASE_ANON_KEY"]),
                  {ws: token})
    key, unknown = Key(ws, PHONE), Key(ws, "1999999999999")
    before = pgstat.snapshot(url)
    rounds = 3
    with httpx.Client(timeout=20) as http:
        for _ in range(rounds):
            for target in ("supabase_rest", "supabase_nested", "supabase_rpc"):
                assert drive(http, paths.lookup(target, key))
            drive(http, paths.write_dry_run("supabase_rest", key, unknown))  # reads + an update of no row
    after = pgstat.snapshot(url)
    rows = pgstat.delta(before, after)
    by_call = {(r["target"], r["call"]): r for r in rows if r["target"] and r["role"] == "authenticated"}
    for target, call in [("supabase_rest", "contacts"), ("supabase_rest", "conversations"),
                         ("supabase_rest", "messages"), ("supabase_rest", "contact_notes"),
                         ("supabase_nested", "contacts nested"), ("supabase_rpc", "rpc/get_contact_context"),
                         ("supabase_write", "contacts id"), ("supabase_write", "conversations newest"),
                         ("supabase_write", "conversations update")]:
        r = by_call.get((target, call))
        assert r is not None, (target, call, [(x["role"], x["query"][:80]) for x in rows])
        assert r["calls"] >= rounds and r["mean_exec_time_ms"] > 0 and r["shared_blks_hit"] > 0
        assert r["reset"] is False and r["max_exec_time_ms_since_reset"] >= r["mean_exec_time_ms"]
    # the write's read of the contact (select=id) is a statement of its own
    assert by_call[("supabase_rest", "contacts")]["calls"] == by_call[("supabase_write", "contacts id")]["calls"]
    assert ("supabase_any", "set_config") in by_call
    rec = pgstat.window_record(before, after, {"supabase_rest": rounds, "supabase_nested": rounds})
    rest = rec["per_target"]["supabase_rest"]
    assert rest["statements"] == ["contact_notes", "contacts", "conversations", "messages"]
    assert rest["mean_ms_per_lookup"] == pytest.approx(rest["total_exec_time_ms"] / rounds, rel=1e-3)
    assert "mean_ms_per_lookup" not in rec["per_target"]["supabase_rpc"]  # its lookups were not given
    assert {"supabase_write contacts id", "supabase_any set_config"} <= set(rec["shared"])
    assert after["server_version"] and after["extension_schema"] == "extensions"
    json.dumps(after)  # serialisable as is


def test_activity_sample_counts_the_gateway_pool(sandbox_env: dict[str, str]) -> None:
    with httpx.Client(timeout=20) as http:  # the pool opens its connections on demand
        for _ in range(3):
            http.get(f"{sandbox_env['SUPABASE_URL']}/rest/v1/workspaces?select=id&limit=1",
                     headers={"apikey": sandbox_env["SUPABASE_ANON_KEY"]})
    with pgstat.connect(sandbox_env["DATABASE_URL"]) as sampler, pgstat.connect(sandbox_env["DATABASE_URL"]) as idle:
        t0 = time.time()
        sample = pgstat.activity_sample(sampler)
        own = idle.execute("select current_user").fetchone()[0]
    assert sample["t"] >= t0 - 1 and sample["max_connections"] == 200
    assert sample["by_role"]["authenticator"]["total"] >= 1
    assert sample["total"] == sum(r["total"] for r in sample["by_role"].values())
    assert sample["active"] == sum(r["active"] for r in sample["by_role"].values())
    # the other connection is there, idle; the sampling one, running the query, is left out
    assert sample["by_role"][own]["idle"] >= 1 and sample["by_role"][own]["active"] == 0
