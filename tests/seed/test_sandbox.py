"""The seed against the real sandbox: PostgreSQL, the PostgREST gateway (with
supabase-py as the peer) and the Convex runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seed.fingerprint import digest_rows
from seed.generate import generate
from seed.tables import TABLES

from .helpers import run_seed

pytestmark = pytest.mark.sandbox

REST_SEED = 9001


def _needs_convex(env: dict[str, str]) -> None:
    if not env.get("CONVEX_URL"):
        pytest.skip("the sandbox has no Convex runtime yet")


def test_generate_through_rest_with_supabase_py_round_trips(sandbox_env, tmp_path):
    from supabase import create_client

    data = generate(40, REST_SEED)
    no_db = {k: v for k, v in sandbox_env.items() if k != "DATABASE_URL"}
    proc = run_seed(no_db, "generate", "--contacts", "40", "--seed", str(REST_SEED), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "REST (service-role key)" in proc.stdout and "Eagle Overseas" in proc.stdout
    again = run_seed(no_db, "generate", "--contacts", "40", "--seed", str(REST_SEED), cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # a rerun replaces its own workspace, no duplicates

    client = create_client(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"])
    ws = data.workspaces[0]["id"]
    for t in TABLES:
        col = "id" if t.name == "workspaces" else "workspace_id"
        rows: Any = (
            client.table(t.name).select(",".join(t.column_names)).eq(col, ws).limit(10_000).execute().data
        )
        assert len(rows) < 1000  # under the gateway's db-max-rows, so one page holds them all
        assert digest_rows(t, rows).hex == digest_rows(t, data.rows[t.name]).hex, t.name
    phone = data.rows["contacts"][0]["phone"]
    ctx: Any = client.rpc("get_contact_context", {"p_workspace_id": ws, "p_phone": phone}).execute().data
    assert ctx["contact"]["phone"] == phone and ctx["workspace"]["name"] == "Eagle Overseas"


def test_copy_load_equals_rest_load(sandbox_env, tmp_path):
    from seed.supabase_rest import SupabaseRest

    proc = run_seed(sandbox_env, "generate", "--contacts", "40", "--seed", str(REST_SEED), cwd=tmp_path)
    assert proc.returncode == 0 and "COPY" in proc.stdout, proc.stderr
    data = generate(40, REST_SEED)
    with SupabaseRest(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]) as rest:
        t = TABLES[4]
        mine = {c["id"] for c in data.rows["conversations"]}
        rows = [r for page in rest.scan(t) for r in page if r["conversation_id"] in mine]
    assert digest_rows(t, rows).hex == digest_rows(t, data.rows[t.name]).hex


def test_wrong_key_against_the_gateway(sandbox_env, tmp_path):
    bad = {**sandbox_env, "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiJ9.e30.wrong"}
    for argv in (("workload",), ("migrate", "--dry-run")):
        proc = run_seed(bad, *argv, cwd=tmp_path)
        assert proc.returncode == 1
        assert "SUPABASE_SERVICE_ROLE_KEY was rejected" in proc.stderr and "Traceback" not in proc.stderr
        assert "wrong" not in proc.stderr


def test_migrate_with_kills_then_verify_against_the_real_runtime(sandbox_env, tmp_path):
    _needs_convex(sandbox_env)
    assert (
        run_seed(sandbox_env, "generate", "--contacts", "300", "--seed", "4242", cwd=tmp_path).returncode == 0
    )
    cp = ["--checkpoint", str(tmp_path / "cp.json"), "--batch-rows", "200", "--in-flight", "3"]
    first = run_seed(
        sandbox_env, "migrate", "--clear", *cp, cwd=tmp_path, extra={"SEED_TEST_KILL": "inflight:4"}
    )
    assert first.returncode == -9, first.stderr
    for point in ("ack:3", "ckpt:2"):  # more instants are covered hermetically in test_migrate.py
        proc = run_seed(sandbox_env, "migrate", *cp, cwd=tmp_path, extra={"SEED_TEST_KILL": point})
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, (point, proc.stderr)
    final = run_seed(sandbox_env, "migrate", *cp, cwd=tmp_path)
    assert final.returncode == 0, final.stderr

    verify = run_seed(sandbox_env, "verify", "--samples", "12", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "parity: OK" in verify.stdout and "13/13 identical" in verify.stdout

    rerun = run_seed(sandbox_env, "migrate", *cp, cwd=tmp_path)  # idempotent: everything unchanged
    assert rerun.returncode == 0, rerun.stderr
    names = {t.name for t in TABLES}
    summary = [ln.split() for ln in rerun.stdout.splitlines() if ln.split() and ln.split()[0] in names]
    inserted = [int(cells[3].replace(",", "")) for cells in summary]  # table, rows, sent, inserted, ...
    assert inserted and sum(inserted) == 0, rerun.stdout


def test_verify_lists_a_difference(sandbox_env, tmp_path):
    _needs_convex(sandbox_env)
    import psycopg

    data = generate(300, 4242)
    assert (
        run_seed(sandbox_env, "generate", "--contacts", "300", "--seed", "4242", cwd=tmp_path).returncode == 0
    )
    assert (
        run_seed(
            sandbox_env, "migrate", "--clear", "--checkpoint", str(tmp_path / "cp.json"), cwd=tmp_path
        ).returncode
        == 0
    )
    note = data.rows["contact_notes"][0]
    with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "update public.contact_notes set content = content || ' (edited)' where id = %s", [note["id"]]
        )
    try:
        proc = run_seed(sandbox_env, "verify", "--samples", "3", cwd=tmp_path)
        assert proc.returncode == 1
        assert "mismatch: contact_notes" in proc.stderr and "parity: FAILED" in proc.stderr
    finally:
        with psycopg.connect(sandbox_env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(
                "update public.contact_notes set content = %s where id = %s", [note["content"], note["id"]]
            )


def test_seeded_sandbox_fixture(seeded_sandbox):
    doc = json.loads(Path(seeded_sandbox["workload"]).read_text())
    assert doc["format"] == "crm-workload/1"
    assert [w["id"] for w in doc["workspaces"]] == [seeded_sandbox["workspace_id"]]
    assert len(doc["known"]) == 300 and doc["unknown"]


def test_regenerating_a_seed_with_another_size_replaces_it(sandbox_env, tmp_path):
    import psycopg

    for n in ("60", "25"):
        proc = run_seed(
            sandbox_env, "generate", "--contacts", n, "--seed", "9002", "--workspaces", "2", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
    with psycopg.connect(sandbox_env["DATABASE_URL"]) as conn:
        count = conn.execute(
            "select count(*) from public.contacts c join public.workspaces w on w.id = c.workspace_id "
            "where w.slug like '%-seed9002'"
        ).fetchone()
        assert count == (25,)
    # leave the shared sandbox as small as it was
    proc = run_seed(sandbox_env, "generate", "--contacts", "1", "--seed", "9002", cwd=tmp_path)
    assert proc.returncode == 0


def test_interrupted_rest_load_is_repaired_by_a_rerun(sandbox_env, tmp_path):
    from seed.supabase_rest import SupabaseRest

    no_db = {k: v for k, v in sandbox_env.items() if k != "DATABASE_URL"}
    argv = ("generate", "--contacts", "120", "--seed", "9003", "--via", "rest")
    killed = run_seed(no_db, *argv, cwd=tmp_path, extra={"SEED_TEST_KILL": "rest:3"})
    assert killed.returncode == -9  # died after 3 batches: workspace, members, contacts; the rest missing
    again = run_seed(no_db, *argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    data = generate(120, 9003)
    mine = {w["id"] for w in data.workspaces}
    with SupabaseRest(sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_SERVICE_ROLE_KEY"]) as rest:
        for t in TABLES:
            key = "id" if t.name == "workspaces" else "workspace_id"
            rows = [r for page in rest.scan(t) for r in page if r[key] in mine]
            assert digest_rows(t, rows).hex == digest_rows(t, data.rows[t.name]).hex, t.name
    run_seed(sandbox_env, "generate", "--contacts", "1", "--seed", "9003", cwd=tmp_path)  # leave it small
