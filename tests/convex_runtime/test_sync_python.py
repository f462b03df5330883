"""The PyPI ``convex`` client's ``subscribe()`` against the sandbox runtime's
sync protocol: it signs in as a workspace member with a Supabase-shaped ES256
JWT, receives the inbox, and then one update for every write, each showing it.
The subscriber runs in its own process (tests/convex_runtime/subscriber.py).

Needs Node and ``npm ci`` (``make test`` does both before pytest).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from seed.convex_client import ConvexClient

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "sandbox" / "convex_runtime" / "bin" / "convex-sandbox.mjs"
SUBSCRIBER = Path(__file__).with_name("subscriber.py")
ISSUER = "https://sync-test.supabase.co/auth/v1"
WORKSPACE = "00000000-0000-4000-8000-000000000001"
MEMBER = "00000000-0000-4000-8000-00000000000a"
OUTSIDER = "00000000-0000-4000-8000-00000000000b"
CONTACT = "00000000-0000-4000-8000-000000000100"
CONVERSATION = "00000000-0000-4000-8000-000000000200"
PHONE = "6281234567890"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "convex").is_dir(),
    reason="needs node and node_modules (npm ci)",
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    work = tmp_path_factory.mktemp("convex-sync")
    key = ec.generate_private_key(ec.SECP256R1())
    kid = str(uuid.uuid4())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": kid, "alg": "ES256", "use": "sig"})
    jwks_uri = "data:text/plain;charset=utf-8;base64," + base64.b64encode(json.dumps({"keys": [public]}).encode()).decode()
    env_file = work / "deployment-env.json"
    env_file.write_text(json.dumps({"CRM_API_KEY": "k", "SUPABASE_JWT_ISSUER": ISSUER, "SUPABASE_JWKS_URL": jwks_uri}))
    admin_key = "pytest|" + secrets.token_hex(16)
    proc = subprocess.Popen(
        ["node", str(CLI), "--port", "0", "--site-port", "0", "--functions", str(ROOT / "convex"),
         "--data-dir", str(work / "data"), "--env-file", str(env_file), "--no-persist"],
        cwd=ROOT, env={**os.environ, "CONVEX_ADMIN_KEY": admin_key},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and port is None:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"API http://127\.0\.0\.1:(\d+)", line)
        port = match.group(1) if match else None
    if port is None:
        proc.kill()
        pytest.fail("the runtime did not start")
    url = f"http://127.0.0.1:{port}"
    with ConvexClient(url, admin_key) as admin:
        admin.mutation("migrate:upsertWorkspaces", {"rows": [
            {"supabaseId": WORKSPACE, "name": "Eagle", "slug": "eagle", "createdAt": 1}]})
        admin.mutation("migrate:upsertWorkspaceMembers", {"rows": [
            {"supabaseId": str(uuid.uuid4()), "workspaceId": WORKSPACE, "userId": MEMBER, "role": "agent", "createdAt": 1}]})
        admin.mutation("migrate:upsertContacts", {"rows": [
            {"supabaseId": CONTACT, "workspaceId": WORKSPACE, "phone": PHONE, "name": "Budi", "tags": [],
             "createdAt": 1, "updatedAt": 1}]})
        admin.mutation("migrate:upsertConversations", {"rows": [
            {"supabaseId": CONVERSATION, "workspaceId": WORKSPACE, "contactId": CONTACT, "status": "open", "unreadCount": 3,
             "createdAt": 1, "lastMessageAt": 1000, "lastMessagePreview": "first"}]})

    def token(sub: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": sub, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 600}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})

    try:
        yield {"url": url, "admin_key": admin_key, "token": token}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Subscriber:
    def __init__(self, url: str, token: str, function: str, args: dict[str, object]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SUBSCRIBER), url, token, function, json.dumps(args)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def next(self) -> object:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the subscriber ended: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return json.loads(line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_a_member_receives_the_inbox_and_every_update(runtime: dict) -> None:
    subscriber = Subscriber(runtime["url"], runtime["token"](MEMBER), "conversations:inbox", {"workspaceId": WORKSPACE})
    try:
        initial = subscriber.next()
        assert initial == [{
            "id": CONVERSATION, "status": "open", "assignedTo": None, "lastMessageAt": 1000.0,
            "lastMessagePreview": "first", "unreadCount": 3.0, "contact": {"id": CONTACT, "name": "Budi", "phone": PHONE},
        }]
        with ConvexClient(runtime["url"], runtime["admin_key"]) as admin:
            for n in range(3):
                admin.mutation("messages:appendOutbound", {"workspaceId": WORKSPACE, "phone": PHONE, "content": f"update {n}"})
                update = subscriber.next()
                assert isinstance(update, list) and update[0]["lastMessagePreview"] == f"update {n}"
                assert update[0]["lastMessageAt"] > 1000
    finally:
        subscriber.stop()


def test_a_non_member_gets_the_functions_forbidden_error(runtime: dict) -> None:
    subscriber = Subscriber(runtime["url"], runtime["token"](OUTSIDER), "conversations:inbox", {"workspaceId": WORKSPACE})
    try:
        assert subscriber.next() == {"error": {"code": "Forbidden", "message": "not a member of this workspace"}}
    finally:
        subscriber.stop()
