"""Supabase Realtime on the sandbox (`SUPABASE_URL/realtime/v1/websocket`), with the
official clients as peers: supabase-py's async realtime client (vsn 1.0.0) and
@supabase/supabase-js (vsn 2.0.0, in node: tests/sandbox/realtime_peer.mjs), plus
the raw Phoenix frames where only the wire shows the behaviour.

Writes go straight to PostgreSQL; the changes come back through the capture
triggers and NOTIFY, filtered by binding and by each subscriber's RLS.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from sandbox.tokens import mint_jwt

from .conftest import Crm

ROOT = Path(__file__).resolve().parents[2]
PEER = Path(__file__).with_name("realtime_peer.mjs")
TIMEOUT = 15.0
COMMIT_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def member_token(env: dict[str, str], user: str, **kw: Any) -> str:
    return mint_jwt(sub=user, state_dir=Path(env["SANDBOX_DIR"]), **kw)


def add_message(crm: Crm, workspace: str, conversation: str, content: str) -> str:
    rows = crm.sql(
        "insert into messages (workspace_id, conversation_id, direction, sender_type, content) "
        "values (%s, %s, 'outbound', 'ai', %s) returning id::text",
        workspace, conversation, content,
    )
    return str(rows[0][0])


class Rt(Crm):
    """Two workspaces of this module's own (a, b), a member each, one conversation each."""

    conversation: dict[str, str]


@pytest.fixture(scope="module")
def crm(sandbox_env: dict[str, str]) -> Iterator[Rt]:
    rt = Rt(sandbox_env["DATABASE_URL"])
    rt.conversation = {}
    tag = uuid.uuid4().hex[:8]
    for label in ("a", "b"):
        ws, user, contact = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        rt.workspaces[label], rt.members[label] = ws, user
        rt.sql("insert into workspaces (id, name, slug) values (%s, %s, %s)", ws, f"Realtime {label}", f"realtime-{label}-{tag}")
        rt.sql("insert into workspace_members (workspace_id, user_id, role) values (%s, %s, 'agent')", ws, user)
        rt.sql("insert into contacts (id, workspace_id, phone, name) values (%s, %s, '6281234500001', 'Budi')", contact, ws)
        rt.conversation[label] = str(rt.sql(
            "insert into conversations (workspace_id, contact_id) values (%s, %s) returning id::text", ws, contact
        )[0][0])
    try:
        yield rt
    finally:
        rt.sql("delete from workspaces where id = any(%s)", list(rt.workspaces.values()))


def conversation_of(crm: Rt, workspace: str) -> str:
    return next(crm.conversation[label] for label, ws in crm.workspaces.items() if ws == workspace)


class PySubscriber:
    """supabase-py's AsyncRealtimeClient on one channel; changes land in a queue."""

    def __init__(self, env: dict[str, str], token: str | None) -> None:
        self.client = AsyncRealtimeClient(f"{env['SUPABASE_URL']}/realtime/v1", token=env["SUPABASE_ANON_KEY"])
        self.token = token
        self.changes: asyncio.Queue[Any] = asyncio.Queue()
        self.states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []

    async def subscribe(self, *bindings: dict[str, Any]) -> None:
        await self.client.connect()
        if self.token:
            await self.client.set_auth(self.token)
        channel = self.client.channel("inbox")
        for b in bindings:
            channel.on_postgres_changes(callback=self.changes.put_nowait, **b)
        await channel.subscribe(lambda state, error: self.states.append((state, error)))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.changes.get(), TIMEOUT)

    async def close(self) -> None:
        await self.client.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---------------------------------------------------------------- supabase-py


def test_a_member_gets_its_workspaces_inserts_with_realtimes_payload(sandbox_env: dict[str, str], crm: Rt) -> None:
    a, b = crm.workspaces["a"], crm.workspaces["b"]
    conv_a, conv_b = conversation_of(crm, a), conversation_of(crm, b)

    async def scenario() -> dict[str, Any]:
        sub = PySubscriber(sandbox_env, member_token(sandbox_env, crm.members["a"]))
        try:
            await sub.subscribe({"event": "INSERT", "table": "messages", "filter": f"workspace_id=eq.{a}"})
            assert sub.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
            add_message(crm, b, conv_b, "not for a")  # another workspace: filtered out, and RLS would hide it
            add_message(crm, a, conv_a, "for a")
            change = await sub.next()
            assert sub.changes.empty()
            return change
        finally:
            await sub.close()

    change = run(scenario())
    data = change["data"]
    assert change["ids"] and all(isinstance(i, int) and i > 0 for i in change["ids"])
    assert data["type"] == "INSERT" and data["schema"] == "public" and data["table"] == "messages"
    assert data["record"]["content"] == "for a" and data["record"]["workspace_id"] == a
    assert data["record"]["message_type"] == "text" and data["errors"] is None
    assert "old_record" not in data
    assert {"name": "content", "type": "text"} in data["columns"] and {"name": "id", "type": "uuid"} in data["columns"]
    assert [c["name"] for c in data["columns"]][:3] == ["id", "workspace_id", "conversation_id"]
    assert COMMIT_TS.match(data["commit_timestamp"])


def test_rls_decides_per_subscriber(sandbox_env: dict[str, str], crm: Rt) -> None:
    a, b = crm.workspaces["a"], crm.workspaces["b"]
    conv_a, conv_b = conversation_of(crm, a), conversation_of(crm, b)

    async def scenario() -> tuple[dict[str, Any], bool]:
        member_b = PySubscriber(sandbox_env, member_token(sandbox_env, crm.members["b"]))
        anon = PySubscriber(sandbox_env, None)  # the anon key's claims: no policy, no rows
        try:
            await member_b.subscribe({"event": "INSERT", "table": "messages"})
            await anon.subscribe({"event": "*", "table": "messages"})
            add_message(crm, a, conv_a, "only for a's members")
            add_message(crm, b, conv_b, "for b")
            first = await member_b.next()
            await asyncio.sleep(0.2)
            return first, anon.changes.empty()
        finally:
            await member_b.close()
            await anon.close()

    first, anon_saw_nothing = run(scenario())
    assert first["data"]["record"]["content"] == "for b"
    assert anon_saw_nothing


def test_update_and_delete_carry_the_old_row_as_far_as_replica_identity_and_rls_allow(
    sandbox_env: dict[str, str], crm: Rt
) -> None:
    a = crm.workspaces["a"]
    conv = conversation_of(crm, a)

    async def scenario() -> list[dict[str, Any]]:
        sub = PySubscriber(sandbox_env, member_token(sandbox_env, crm.members["a"]))
        try:
            await sub.subscribe(
                {"event": "UPDATE", "table": "conversations", "filter": f"workspace_id=eq.{a}"},
                {"event": "DELETE", "table": "messages"},
            )
            crm.sql("update conversations set last_message_preview = 'updated', unread_count = 7 where id = %s", conv)
            message = add_message(crm, a, conv, "to delete")
            crm.sql("delete from messages where id = %s", message)
            return [await sub.next(), await sub.next()]
        finally:
            await sub.close()

    update, delete = run(scenario())
    assert update["data"]["type"] == "UPDATE"
    assert update["data"]["record"]["last_message_preview"] == "updated" and update["data"]["record"]["unread_count"] == 7
    assert update["data"]["old_record"] == {"id": conv}
    assert delete["data"]["type"] == "DELETE" and "record" not in delete["data"]
    assert set(delete["data"]["old_record"]) == {"id"}


def test_an_access_token_update_switches_the_claims(sandbox_env: dict[str, str], crm: Rt) -> None:
    a = crm.workspaces["a"]
    conv = conversation_of(crm, a)
    binding = {"event": "INSERT", "table": "messages", "filter": f"workspace_id=eq.{a}"}

    async def scenario() -> str:
        sub = PySubscriber(sandbox_env, None)
        peer = PySubscriber(sandbox_env, member_token(sandbox_env, crm.members["a"]))
        try:
            await sub.subscribe(binding)
            await peer.subscribe(binding)
            add_message(crm, a, conv, "invisible to anon")
            # The server settles a change's audience in one step before delivering it: once the member
            # peer has this one, the anonymous subscriber was judged with its anonymous claims.
            assert (await peer.next())["data"]["record"]["content"] == "invisible to anon"
            await sub.client.set_auth(member_token(sandbox_env, crm.members["a"]))
            # The access_token push has no reply: write until a change is judged with the new claims.
            for attempt in range(20):
                add_message(crm, a, conv, f"visible to the member ({attempt})")
                try:
                    change = await asyncio.wait_for(sub.changes.get(), 0.5)
                except TimeoutError:
                    continue
                return str(change["data"]["record"]["content"])
            raise AssertionError("no change reached the subscriber after its access_token update")
        finally:
            await sub.close()
            await peer.close()

    assert run(scenario()).startswith("visible to the member")


def test_a_join_with_an_expired_token_is_refused(sandbox_env: dict[str, str], crm: Rt) -> None:
    async def scenario() -> tuple[RealtimeSubscribeStates, Exception | None]:
        sub = PySubscriber(sandbox_env, member_token(sandbox_env, crm.members["a"], ttl=-60))
        try:
            await sub.subscribe({"event": "*", "table": "messages"})
            return sub.states[-1]
        finally:
            await sub.close()

    state, error = run(scenario())
    assert state == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "InvalidJWTToken: Token has expired" in str(error)


# ---------------------------------------------------------------- the wire (vsn 2.0.0)


def test_v2_frames_heartbeat_join_change_leave(sandbox_env: dict[str, str], crm: Rt) -> None:
    a = crm.workspaces["a"]
    conv = conversation_of(crm, a)
    url = sandbox_env["SUPABASE_URL"].replace("http", "ws") + "/realtime/v1/websocket"
    token = member_token(sandbox_env, crm.members["a"])

    async def scenario() -> list[Any]:
        frames: list[Any] = []
        async with websockets.connect(f"{url}?apikey={sandbox_env['SUPABASE_ANON_KEY']}&vsn=2.0.0") as ws:
            async def recv() -> Any:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
                return frames[-1]

            await ws.send(json.dumps([None, "1", "phoenix", "heartbeat", {}]))
            await recv()
            binding = {"event": "INSERT", "schema": "public", "table": "messages", "filter": f"workspace_id=eq.{a}"}
            config = {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                      "postgres_changes": [binding], "private": False}
            await ws.send(json.dumps(["2", "2", "realtime:inbox", "phx_join", {"config": config, "access_token": token}]))
            await recv()
            await recv()  # system
            add_message(crm, a, conv, "over v2")
            await recv()
            await ws.send(json.dumps(["2", "3", "realtime:inbox", "phx_leave", {}]))
            await recv()
            await recv()
            await ws.send(json.dumps([None, "4", "realtime:other", "broadcast", {}]))
            await recv()
        return frames

    heartbeat, joined, system, change, left, closed, unmatched = run(scenario())
    assert heartbeat == [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
    assert joined[:4] == ["2", "2", "realtime:inbox", "phx_reply"] and joined[4]["status"] == "ok"
    [echoed] = joined[4]["response"]["postgres_changes"]
    assert {k: v for k, v in echoed.items() if k != "id"} == {
        "event": "INSERT", "schema": "public", "table": "messages", "filter": f"workspace_id=eq.{a}"}
    assert isinstance(echoed["id"], int)
    assert system == ["2", None, "realtime:inbox", "system",
                      {"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL",
                       "channel": "inbox"}]
    assert change[:4] == [None, None, "realtime:inbox", "postgres_changes"]
    assert change[4]["ids"] == [echoed["id"]] and change[4]["data"]["record"]["content"] == "over v2"
    assert left == ["2", "3", "realtime:inbox", "phx_reply", {"status": "ok", "response": {}}]
    assert closed == ["2", "2", "realtime:inbox", "phx_close", {}]
    assert unmatched == [None, "4", "realtime:other", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}]


def test_a_binding_on_an_unpublished_table_or_a_bad_filter_is_a_system_error(sandbox_env: dict[str, str], crm: Rt) -> None:
    url = sandbox_env["SUPABASE_URL"].replace("http", "ws") + "/realtime/v1/websocket"
    token = member_token(sandbox_env, crm.members["a"])

    async def join(binding: dict[str, Any]) -> list[Any]:
        async with websockets.connect(f"{url}?apikey={sandbox_env['SUPABASE_ANON_KEY']}&vsn=2.0.0") as ws:
            config = {"postgres_changes": [binding], "private": False}
            await ws.send(json.dumps(["1", "1", "realtime:x", "phx_join", {"config": config, "access_token": token}]))
            return [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(2)]

    reply, system = run(join({"event": "*", "schema": "public", "table": "no_such_table"}))
    assert reply[4]["status"] == "ok"
    assert system[4]["status"] == "error" and "Please check Realtime is enabled" in system[4]["message"]
    reply, system = run(join({"event": "*", "schema": "public", "table": "messages", "filter": "workspace_id=like.x"}))
    assert system[4] == {"extension": "postgres_changes", "status": "error",
                         "message": 'Error parsing `filter` params: ["like", "x"]', "channel": "x"}


def test_connect_needs_a_known_api_key_and_a_supported_vsn(sandbox_env: dict[str, str]) -> None:
    base = sandbox_env["SUPABASE_URL"].replace("http", "ws") + "/realtime/v1/websocket"

    async def status(url: str) -> tuple[int, bytes]:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(url):
                pass
        return info.value.response.status_code, info.value.response.body or b""

    assert run(status(base)) == (401, b'{"message":"No API key found in request"}')
    assert run(status(f"{base}?apikey=nope")) == (401, b'{"message":"Invalid API key"}')
    assert run(status(f"{base}?apikey={sandbox_env['SUPABASE_ANON_KEY']}&vsn=3.0.0"))[0] == 403


# ---------------------------------------------------------------- @supabase/supabase-js


@pytest.fixture
def js_peer(sandbox_env: dict[str, str]) -> Iterator[Any]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "@supabase" / "supabase-js").is_dir():
        pytest.skip("needs node and node_modules (npm ci)")
    procs: list[subprocess.Popen[str]] = []

    def start(token: str | None, bindings: list[dict[str, Any]]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["node", str(PEER), sandbox_env["SUPABASE_URL"], sandbox_env["SUPABASE_ANON_KEY"], token or "", json.dumps(bindings)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def read_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    line = proc.stdout.readline()
    if not line or time.monotonic() > deadline:
        raise AssertionError(f"the peer ended: {proc.stderr.read() if proc.stderr else ''}")
    return dict(json.loads(line))


def test_supabase_js_subscribes_and_gets_typed_rows(js_peer: Any, sandbox_env: dict[str, str], crm: Rt) -> None:
    a = crm.workspaces["a"]
    conv = conversation_of(crm, a)
    token = member_token(sandbox_env, crm.members["a"])
    peer = js_peer(token, [
        {"event": "INSERT", "schema": "public", "table": "messages", "filter": f"workspace_id=eq.{a}"},
        {"event": "UPDATE", "schema": "public", "table": "conversations", "filter": f"id=eq.{conv}"},
    ])
    assert read_line(peer) == {"status": "SUBSCRIBED"}
    message = add_message(crm, a, conv, "from the assistant")
    crm.sql("update conversations set last_message_preview = 'from the assistant', unread_count = 3 where id = %s", conv)
    inserted, updated = read_line(peer)["change"], read_line(peer)["change"]
    assert inserted["eventType"] == "INSERT" and inserted["table"] == "messages"
    assert inserted["new"]["id"] == message and inserted["new"]["content"] == "from the assistant"
    assert inserted["old"] == {} and inserted["errors"] is None and COMMIT_TS.match(inserted["commit_timestamp"])
    assert updated["eventType"] == "UPDATE" and updated["new"]["unread_count"] == 3  # int4 arrives as a number
    assert updated["old"] == {"id": conv}


def test_supabase_js_set_auth_pushes_the_new_token(js_peer: Any, sandbox_env: dict[str, str], crm: Rt) -> None:
    b = crm.workspaces["b"]
    conv = conversation_of(crm, b)
    peer = js_peer(None, [{"event": "INSERT", "schema": "public", "table": "messages", "filter": f"workspace_id=eq.{b}"}])
    assert read_line(peer) == {"status": "SUBSCRIBED"}
    add_message(crm, b, conv, "hidden from the anon key")
    assert peer.stdin is not None
    peer.stdin.write(f"token {member_token(sandbox_env, crm.members['b'])}\n")
    peer.stdin.flush()
    time.sleep(0.5)  # the access_token push has no reply
    marker = f"seen by b's member {uuid.uuid4()}"
    add_message(crm, b, conv, marker)
    assert read_line(peer)["change"]["new"]["content"] == marker
