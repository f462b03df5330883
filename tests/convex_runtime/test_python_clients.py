"""The sandbox Convex runtime driven by the project's Python side: the seed's
Convex client migrates a generated dataset through ``migrate:upsert*``, and
``migrate:tableDigest`` agrees with ``seed.fingerprint`` computed over the
same Supabase rows (the parity check ``seed verify`` relies on).

Needs Node and ``npm ci`` (``make test`` does both before pytest).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seed.convex_client import ConvexClient, ConvexFunctionError
from seed.fingerprint import digest_rows
from seed.generate import generate
from seed.tables import TABLES, to_convex

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "sandbox" / "convex_runtime" / "bin" / "convex-sandbox.mjs"
API_KEY = "py-test-crm-key"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "convex").is_dir(),
    reason="needs node and node_modules (npm ci)",
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("convex-runtime")
    env_file = work / "deployment-env.json"
    env_file.write_text(json.dumps({"CRM_API_KEY": API_KEY}))
    admin_key = "pytest|" + secrets.token_hex(16)
    proc = subprocess.Popen(
        [
            "node",
            str(CLI),
            "--port",
            "0",
            "--site-port",
            "0",
            "--functions",
            str(ROOT / "convex"),
            "--data-dir",
            str(work / "data"),
            "--env-file",
            str(env_file),
            "--no-persist",
        ],
        cwd=ROOT,
        env={**os.environ, "CONVEX_ADMIN_KEY": admin_key},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    ports = None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"API http://127\.0\.0\.1:(\d+), HTTP actions http://127\.0\.0\.1:(\d+)", line)
        if match:
            ports = match.groups()
            break
    if ports is None:
        proc.kill()
        pytest.fail("runtime did not start: " + "".join(seen))
    try:
        yield {
            "url": f"http://127.0.0.1:{ports[0]}",
            "site": f"http://127.0.0.1:{ports[1]}",
            "admin_key": admin_key,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def migrated(runtime: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    data = generate(contacts=120, seed=7)
    with ConvexClient(runtime["url"], runtime["admin_key"]) as client:
        for table in TABLES:
            rows = [to_convex(table, row) for row in data.rows[table.name]]
            for start in range(0, len(rows), 500):
                client.mutation(table.mutation, {"rows": rows[start : start + 500]})
    return data.rows


def _digest(client: ConvexClient, table: str, page_size: int) -> tuple[int, str]:
    cursor = None
    count = 0
    total = 0
    while True:
        page = client.query("migrate:tableDigest", {"table": table, "cursor": cursor, "numItems": page_size})
        count += page["count"]
        total = (total + int(page["digest"], 16)) % 2**64
        cursor = page["cursor"]
        if page["isDone"]:
            return count, f"{total:016x}"


def test_table_digests_match_the_python_fingerprint(
    runtime: dict[str, str], migrated: dict[str, list]
) -> None:
    with ConvexClient(runtime["url"], runtime["admin_key"]) as client:
        for table in TABLES:
            expected = digest_rows(table, migrated[table.name])
            assert _digest(client, table.convex, 97) == (expected.count, expected.hex), table.name


def test_a_repeated_migration_changes_nothing(runtime: dict[str, str], migrated: dict[str, list]) -> None:
    table = TABLES[2]  # contacts
    rows = [to_convex(table, row) for row in migrated[table.name]]
    with ConvexClient(runtime["url"], runtime["admin_key"]) as client:
        result = client.mutation(table.mutation, {"rows": rows})
    assert result == {"inserted": 0, "updated": 0, "unchanged": len(rows)}


def test_missing_reference_comes_back_as_convex_error_data(
    runtime: dict[str, str], migrated: dict[str, list]
) -> None:
    orphan = {
        "supabaseId": "00000000-0000-4000-8000-0000000000ff",
        "workspaceId": "00000000-0000-4000-8000-000000000000",
        "phone": "6280000000001",
        "tags": [],
        "createdAt": 1,
        "updatedAt": 1,
    }
    with (
        ConvexClient(runtime["url"], runtime["admin_key"]) as client,
        pytest.raises(ConvexFunctionError) as info,
    ):
        client.mutation("migrate:upsertContacts", {"rows": [orphan]})
    assert info.value.data == {
        "code": "MissingReference",
        "table": "workspaces",
        "supabaseId": orphan["workspaceId"],
    }


def test_http_action_lookup_of_a_migrated_contact(runtime: dict[str, str], migrated: dict[str, list]) -> None:
    contact = migrated["contacts"][0]
    resp = httpx.get(
        f"{runtime['site']}/contacts/by-phone",
        params={"workspaceId": str(contact["workspace_id"]), "phone": contact["phone"]},
        headers={"x-api-key": API_KEY},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["contact"]["id"] == str(contact["id"])
    assert body["workspace"]["id"] == str(contact["workspace_id"])
    times = [c["lastMessageAt"] for c in body["conversations"]]
    assert times == sorted(times, key=lambda t: (t is None, -(t or 0)))
    for conversation in body["conversations"]:
        created = [m["createdAt"] for m in conversation["messages"]]
        assert created == sorted(created, reverse=True) and len(created) <= 20
    missing = httpx.get(
        f"{runtime['site']}/contacts/by-phone",
        params={"workspaceId": str(contact["workspace_id"]), "phone": "6280000000000"},
        headers={"x-api-key": API_KEY},
    )
    assert (missing.status_code, missing.json()) == (404, {"error": "contact not found"})
