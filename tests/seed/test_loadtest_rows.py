"""The load tests' writes on both backends: `seed verify` sees past them, `seed cleanup` removes them.

Against the real sandbox: the writes go through the harness's own write paths
(PostgREST insert + conversation update; the Convex HTTP action), as a run with
the write task makes them.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.paths import NOT_FOUND, Paths, outcome
from harness.targets import Endpoints
from harness.workload import Key
from seed.generate import generate

from .helpers import run_seed

pytestmark = pytest.mark.sandbox

SEED, CONTACTS = 4242, 300


def _write(env: dict[str, str], target: str, key: Key) -> None:
    """One write through a target's write path, sent with httpx."""
    ep = Endpoints(supabase_url=env["SUPABASE_URL"], convex_url=env["CONVEX_URL"], convex_site_url=env["CONVEX_SITE_URL"],
                   supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"], supabase_bearer=env["SUPABASE_SERVICE_ROLE_KEY"],
                   crm_api_key=env["CRM_API_KEY"])
    path = Paths(ep).write(target, key)
    with httpx.Client(timeout=30) as client:
        try:
            call = next(path)
            while True:
                r = client.request(call.request.method, call.request.url, headers=dict(call.request.headers),
                                   content=call.request.body)
                data, failure = outcome(call, r.status_code, r.content)
                assert failure is None and data is not NOT_FOUND, (call.request, failure)
                call = path.send(data)
        except StopIteration as done:
            assert done.value is True


@pytest.fixture
def synced(sandbox_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    if not sandbox_env.get("CONVEX_URL"):
        pytest.skip("the sandbox has no Convex runtime")
    assert run_seed(sandbox_env, "generate", "--contacts", str(CONTACTS), "--seed", str(SEED), cwd=tmp_path).returncode == 0
    proc = run_seed(sandbox_env, "migrate", "--clear", "--checkpoint", str(tmp_path / "cp.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return sandbox_env


def test_verify_leaves_out_the_writes_and_cleanup_removes_them(synced: dict[str, str], tmp_path: Path) -> None:
    data = generate(CONTACTS, SEED)
    with_conversation = {c["contact_id"] for c in data.rows["conversations"]}
    contacts = [c for c in data.rows["contacts"] if c["id"] in with_conversation][:4]
    keys = [Key(c["workspace_id"], c["phone"]) for c in contacts]
    # each backend gets its own writes, to different contacts, as a run's users would
    for key in keys[:2]:
        _write(synced, "supabase_rest", key)
    _write(synced, "convex_http", keys[2])
    _write(synced, "convex_query", keys[3])
    _write(synced, "convex_http", keys[3])

    proc = run_seed(synced, "verify", "--samples", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parity: OK" in proc.stdout
    assert "left out: load-test writes (2 messages on Supabase, 3 on Convex" in proc.stdout
    assert "4 contacts not sampled" in proc.stdout

    raw = run_seed(synced, "verify", "--samples", "3", "--include-loadtest", cwd=tmp_path)
    assert raw.returncode == 1
    assert "mismatch: messages" in raw.stderr and "mismatch: conversations" in raw.stderr

    cleaned = run_seed(synced, "cleanup", cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "Supabase (http://127.0.0.1:54321): 2 messages deleted, 2 conversations restored" in cleaned.stdout
    assert "3 messages deleted, 2 conversations restored" in cleaned.stdout

    after = run_seed(synced, "verify", "--samples", "8", "--include-loadtest", cwd=tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "parity: OK" in after.stdout and "9/9 identical" in after.stdout
    again = run_seed(synced, "cleanup", cwd=tmp_path)
    assert "0 messages deleted, 0 conversations restored" in again.stdout


def test_cleanup_refuses_a_host_that_is_not_the_sandbox(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    env = {**sandbox_env, "SUPABASE_URL": "https://abcdefghijklmnop.supabase.co"}
    proc = run_seed(env, "cleanup", "--backend", "supabase", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "seed cleanup: refusing to delete the load tests' rows on abcdefghijklmnop.supabase.co: it is not the "
        "local sandbox; pass --i-know-this-is abcdefghijklmnop.supabase.co to confirm"
    )


def test_verify_against_an_empty_convex_says_to_migrate(synced: dict[str, str], tmp_path: Path) -> None:
    from seed.convex_client import ConvexClient

    with ConvexClient(synced["CONVEX_URL"], synced["CONVEX_ADMIN_KEY"]) as convex:
        for table in ("contactNotes", "messages", "conversations", "contacts", "workspaceMembers", "workspaces"):
            while convex.mutation("migrate:clearTable", {"table": table, "batchSize": 4000})["hasMore"]:
                pass
    try:
        proc = run_seed(synced, "verify", cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.strip() == "seed verify: Convex has no rows (http://127.0.0.1:3210): run `python -m seed migrate`"
        assert proc.stdout == ""
    finally:
        restore = run_seed(synced, "migrate", "--restart", "--checkpoint", str(tmp_path / "cp2.json"), cwd=tmp_path)
        assert restore.returncode == 0, restore.stderr


def test_verify_compares_each_sampled_lookup_through_the_official_client(synced: dict[str, str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The PyPI `convex` ConvexClient (admin auth, internal query) answers what the RPC answers; verify's
    comparison goes through it: a lookup it gets differently is reported under its name."""
    from seed import verify as ver
    from seed.convex_client import ConvexClient
    from seed.supabase_rest import SupabaseRest

    data = generate(CONTACTS, SEED)
    contact = data.rows["contacts"][0]
    official = ver._official_client(synced["CONVEX_URL"], synced["CONVEX_ADMIN_KEY"])
    value = official.query("contacts:getContextByPhoneInternal",
                           {"workspaceId": contact["workspace_id"], "phone": contact["phone"]})
    with SupabaseRest(synced["SUPABASE_URL"], synced["SUPABASE_SERVICE_ROLE_KEY"]) as rest, \
            ConvexClient(synced["CONVEX_URL"], synced["CONVEX_ADMIN_KEY"]) as convex:
        rpc = rest.rpc("get_contact_context", {"p_workspace_id": contact["workspace_id"], "p_phone": contact["phone"],
                                               "p_message_limit": 20})
        assert value["contact"]["phone"] == contact["phone"] and ver.diff(rpc, value) == []

        class Skewed:  # an official client that sees one field differently
            def query(self, path: str, args: dict) -> object:
                doc = official.query(path, args)
                if doc is not None:
                    doc["contact"]["name"] = "someone else"
                return doc

        monkeypatch.setattr(ver, "_official_client", lambda url, key: Skewed())
        report = ver.verify(rest, convex, synced["CONVEX_ADMIN_KEY"], samples=3)
    found = [lk for lk in report.lookups if lk.differences]
    assert len(found) == 3  # every sampled contact; the unknown phone is null on all three sides
    assert all(d.startswith("official convex client: $.contact.name: ") for lk in found for d in lk.differences)
